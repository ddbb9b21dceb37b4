"""The workflow plans, validates its config before any job runs, and builds what exists."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from workflow_utils import run_snakemake

pytestmark = pytest.mark.workflow


def test_default_config_plans(tmp_path):
    res = run_snakemake(tmp_path, "-n", test_config=False)
    assert res.returncode == 0, res.stderr
    assert "flame_model" in res.stdout


@pytest.mark.parametrize(("override", "named"), [
    ({"flame": {"n_shape": 500}}, "n_shape"),
    ({"flame": {"n_shapes": 10}}, "n_shapes"),
    ({"dataset": {"kind": "youtube"}}, "kind"),
    ({"dataset": {"kind": "candor"}}, "root"),
    ({"seed": -1}, "seed"),
])
def test_invalid_config_fails_before_any_job_naming_the_key(tmp_path, override, named):
    res = run_snakemake(tmp_path, "-n", overrides=override)
    assert res.returncode != 0
    assert named in res.stderr + res.stdout
    assert not (tmp_path / "results").exists()


def test_missing_flame_file_is_a_clear_config_error(tmp_path):
    res = run_snakemake(tmp_path, "-n", overrides={
        "flame": {"model": str(tmp_path / "generic_model.pkl"),
                  "landmark_embedding": str(tmp_path / "landmark_embedding.npy")}})
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "flame.model" in out and "not a file" in out


def test_real_flame_needs_embedding(tmp_path):
    (tmp_path / "generic_model.pkl").write_bytes(b"x")
    res = run_snakemake(tmp_path, "-n", overrides={
        "flame": {"model": str(tmp_path / "generic_model.pkl")}})
    assert res.returncode != 0
    assert "flame.landmark_embedding" in res.stdout + res.stderr


def test_smoke_run_builds_head_cohort_and_manifest(tmp_path):
    res = run_snakemake(tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    manifest = pd.read_parquet(tmp_path / "results/cohort/manifest.parquet")
    assert len(manifest) == 8 and (manifest["status"] == "ok").all()  # 4 speakers x 2 sessions
    assert manifest["video"].map(lambda v: Path(v).is_relative_to(tmp_path / "resources")).all()
    cohort = json.loads((tmp_path / "resources/synthetic/smoke/cohort.json").read_text())
    assert cohort["n_videos"] == 8
    assert (tmp_path / "results/benchmarks/synthesize_smoke.tsv").is_file()
    info = json.loads((tmp_path / "results/flame/model.json").read_text())
    assert info["synthetic"] is True
    assert info["n_shape"] == 20 and info["n_expr"] == 10
    assert info["fast_path_vertices"] < info["n_vertices"]
    assert len(info["model_sha256"]) == 64
    assert (tmp_path / "logs/flame/flame_model.log").stat().st_size > 0
