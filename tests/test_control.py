"""The disentanglement control: the verdict, the summary's section and the control run."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from workflow_utils import ROOT, run_snakemake

from facedyn.identify.control import FAR_ABOVE_CHANCE, control_verdict, is_control
from facedyn.plots.summary import summary_markdown

CONTROLS = yaml.safe_load((ROOT / "config/controls.yaml").read_text())


def _metrics(
    name: str, source: str, models: dict[str, tuple[float, float, float]], chance: float = 0.03
) -> dict:
    return {
        "experiment": name,
        "source": source,
        "protocol": "cross_session",
        "chance": chance,
        "n_speakers": 32,
        "settings": {"encoder": "conformer"},
        "models": {m: {"top1": t, "top1_ci": [lo, hi]} for m, (t, lo, hi) in models.items()},
    }


def test_verdict_passes_only_at_chance_with_shape_far_above():
    at_chance = {
        "conformer": (0.04, 0.02, 0.06),
        "stats_lr": (0.03, 0.01, 0.05),
        "chance": (0.03, 0.02, 0.04),
        "shape_only": (0.6, 0.5, 0.7),
    }
    good = [
        _metrics("main", "fitted", at_chance),
        _metrics("truth", "truth", {k: v for k, v in at_chance.items() if k != "shape_only"}),
    ]
    verdict = control_verdict(good)
    assert verdict["passed"] and len(verdict["rows"]) == 7
    assert {r["expected"] for r in verdict["rows"]} == {"chance", "far above chance"}
    # One encoder identifies speakers (CI above chance): failed, and that row says so.
    leaky = [_metrics("main", "fitted", {**at_chance, "conformer": (0.2, 0.12, 0.3)})]
    verdict = control_verdict(leaky)
    assert not verdict["passed"]
    assert [r["model"] for r in verdict["rows"] if not r["met"]] == ["conformer"]
    # Shape-only near chance is no control either: the cohort must keep its shapes.
    flat = [_metrics("main", "fitted", {**at_chance, "shape_only": (0.1, 0.05, 0.15)})]
    assert FAR_ABOVE_CHANCE * 0.03 > 0.05 and not control_verdict(flat)["passed"]
    # Nothing judged is not a pass.
    assert not control_verdict([_metrics("main", "fitted", {"chance": (0.03, 0.02, 0.04)})])[
        "passed"
    ]


def test_a_control_is_a_synthetic_cohort_without_dynamic_identity():
    assert is_control({"kind": "synthetic", "synthetic": {"signature_strength": 0}})
    assert not is_control({"kind": "synthetic", "synthetic": {"signature_strength": 2.0}})
    assert not is_control({"kind": "candor", "synthetic": {"signature_strength": 0}})


def test_summary_section_states_the_verdict():
    metrics = [
        _metrics("main", "fitted", {"conformer": (0.2, 0.12, 0.3), "shape_only": (0.6, 0.5, 0.7)})
    ]
    page = summary_markdown("control", metrics, main="main", control=True)
    assert "## Disentanglement control" in page and "**Control failed**" in page
    assert (
        "| `main` | fitted | Conformer | 20.0 % [12.0 %, 30.0 %] | 3.0 % | chance | **no** |"
        in page
    )
    assert "Disentanglement control" not in summary_markdown("default", metrics, main="main")


def test_control_config_runs_main_and_truth_only(tmp_path):
    res = run_snakemake(tmp_path, "-n", overrides=CONTROLS, test_config=False)
    assert res.returncode == 0, res.stderr[-3000:]
    planned = {
        line.split("/")[2]
        for line in res.stdout.split()
        if line.startswith("results/identify/") and line.count("/") >= 3
    }
    assert planned == {"main", "truth"}
    assert "resources/synthetic/control/cohort.json" in res.stdout


@pytest.mark.workflow
def test_smoke_control_run_reports_its_verdict(tmp_path):
    res = run_snakemake(tmp_path, overrides=CONTROLS)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    speakers = pd.read_parquet(tmp_path / "resources/synthetic/control/truth/speakers.parquet")
    dynamics = speakers[["syllable_rate_hz", "smile_rate_per_min", "texture_hz"]]
    assert (dynamics.nunique() == 1).all()  # one dynamics distribution for everyone
    assert speakers["shape_000"].nunique() == len(speakers)  # own head shapes
    assert speakers["instability"].nunique() == len(speakers)
    metrics = [
        json.loads((tmp_path / f"results/identify/{name}/metrics.json").read_text())
        for name in ("main", "truth", "data_50")
    ]
    verdict = control_verdict(metrics)
    page = (tmp_path / "results/summary.md").read_text()
    assert "## Disentanglement control" in page
    assert ("**Control passed**" in page) == verdict["passed"]
    rows = {(r["experiment"], r["model"]) for r in verdict["rows"]}
    assert {
        ("main", "conformer"),
        ("main", "shape_only"),
        ("truth", "conformer"),
        ("truth", "lstm"),
        ("truth", "tcn"),
        ("main", "stats_lr"),
    } <= rows
