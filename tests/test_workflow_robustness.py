"""The whole pipeline's robustness on the smoke cohort: a killed run resumes
without redoing finished videos or leaving half-written outputs, two runs with the same seed
give identical results, bad videos are excluded with their reasons while the rest of the run
completes, ids that look like numbers stay strings, no output holds image data of the videos,
and every table and JSON file records its provenance.

Three ``snakemake`` runs are shared by the tests (module-scoped fixtures):

* ``interrupted``: the synthetic smoke cohort, stopped with SIGTERM once some landmark tables
  exist, restarted and killed with SIGKILL once some FLAME tables exist, unlocked and
  finished;
* ``repeat``: the same configuration from the same generated cohort in a fresh folder;
* ``bad_inputs``: ``dataset.kind: manifest`` over the smoke videos under ids that look like
  numbers, plus a corrupt, a truncated, a zero-byte, a missing, a face-less and a two-face
  video, and a speaker with a single session.

Identification is trimmed to what these checks need (the main experiment with its cheap
baselines, no ground-truth ceiling) to keep the three runs short. The summary page's QC and
provenance sections are checked on test_workflow.py's full runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from output_checks import (
    image_findings,
    provenance_of,
    provenance_problems,
    temporary_files,
    unreadable_outputs,
)
from workflow_utils import NO_AUDIT, run_snakemake, snakemake_command

import facedyn
from facedyn.tables import read_table

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

#: Robustness is tested on the main cohort alone (the smoke run tests the audit).
TRIM = {
    **NO_AUDIT,
    "identify": {
        "ceiling_experiment": None,
        "experiments": {"main": {"baselines": ["stats_lr", "shape_only", "chance"]}},
    },
}
TARGETS = (
    "results/qc/videos.parquet",
    "results/dnr/summary.json",
    "results/identify/main/metrics.json",
)
#: The manifest run also draws the main experiment's figures (scanned for image data).
MANIFEST_TARGETS = (*TARGETS, "results/figures/accuracy.png")


# --------------------------------------------------------------------------- helpers


def _per_video_outputs(workdir: Path) -> dict[Path, int]:
    """Landmark and FLAME tables that exist, with their modification times (ns)."""
    found = [
        *workdir.glob("results/landmarks/*/*.parquet"),
        *workdir.glob("results/flame/*/*.parquet"),
    ]
    return {p: p.stat().st_mtime_ns for p in found}


def _job_outputs(log: str) -> set[str]:
    """Every output path of the jobs a snakemake log says it ran."""
    return {
        p.strip()
        for line in re.findall(r"^\s+output: (.+)$", log, re.MULTILINE)
        for p in line.split(",")
    }


def _settled(workdir: Path, settle_s: float = 3.0) -> dict[Path, int]:
    """Per-video outputs last modified more than ``settle_s`` ago: their jobs are over and
    recorded (snakemake touches a job's outputs once it has noticed that it ended)."""
    limit = time.time_ns() - int(settle_s * 1e9)
    return {p: t for p, t in _per_video_outputs(workdir).items() if t < limit}


def _interrupt(workdir: Path, name: str, ready, sig: int) -> tuple[dict[Path, int], str]:
    """Start snakemake, wait until ``ready()``, snapshot the settled per-video outputs and
    send ``sig`` to its whole process group (snakemake and its jobs). Returns the snapshot
    and the run's log."""
    log_path = workdir / f"{name}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            snakemake_command(workdir, *TARGETS, overrides=TRIM),
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 600
        try:
            while not ready():
                assert proc.poll() is None, (
                    f"snakemake ended (rc {proc.returncode}) before it could be interrupted:\n"
                    + log_path.read_text()[-3000:]
                )
                assert time.monotonic() < deadline, "the run did not get far enough in 600 s"
                time.sleep(0.2)
            snapshot = _settled(workdir)
            os.killpg(proc.pid, sig)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return snapshot, log_path.read_text()


@dataclass
class Interrupted:
    workdir: Path
    finished_before_kill: dict[Path, int]
    unreadable_after_kills: list[str]
    resumed_log: str
    returncode: int


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Interrupted:
    workdir = tmp_path_factory.mktemp("interrupted")
    n_flame = lambda: len(list(workdir.glob("results/flame/*/*.parquet")))  # noqa: E731
    # 1. SIGTERM (Ctrl-C, a cluster time limit) once three videos have had their landmark
    #    tables for a few seconds (finished and recorded jobs).
    finished, _ = _interrupt(workdir, "run1", lambda: len(_settled(workdir)) >= 3, signal.SIGTERM)
    assert not (workdir / "results/qc/videos.parquet").exists(), "not interrupted mid-way"
    unreadable = unreadable_outputs(workdir / "results")
    # 2. Restart, then SIGKILL (a lost node, the OOM killer) once two more videos are fitted.
    fitted = n_flame()
    _, log2 = _interrupt(workdir, "run2", lambda: n_flame() >= fitted + 2, signal.SIGKILL)
    unreadable += unreadable_outputs(workdir / "results")
    # 3. A killed snakemake leaves its lock: unlock, then finish.
    unlock = run_snakemake(workdir, *TARGETS, "--unlock", overrides=TRIM)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    res = run_snakemake(workdir, *TARGETS, overrides=TRIM)
    (workdir / "run3.log").write_text(res.stdout + res.stderr)
    return Interrupted(
        workdir, finished, unreadable, log2 + res.stdout + res.stderr, res.returncode
    )


@pytest.fixture(scope="module")
def repeat(interrupted) -> Path:
    """The same configuration again, from a copy of the generated cohort and head."""
    assert interrupted.returncode == 0
    workdir = interrupted.workdir.parent / "repeat"
    shutil.copytree(interrupted.workdir / "resources", workdir / "resources")
    res = run_snakemake(workdir, *TARGETS, overrides=TRIM)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return workdir


# --------------------------------------------------------------------------- interruption


def test_killed_run_resumes_without_redoing_finished_videos(interrupted):
    assert interrupted.returncode == 0, interrupted.resumed_log[-4000:]
    finished = interrupted.finished_before_kill
    assert len(finished) >= 3
    redone = _job_outputs(interrupted.resumed_log)
    for path, mtime in finished.items():
        rel = str(path.relative_to(interrupted.workdir))
        assert rel not in redone, f"{rel} was computed again after the restart"
        assert path.stat().st_mtime_ns == mtime, f"{rel} was rewritten"
    # and the restarts did do the rest: every video has both tables
    outputs = _per_video_outputs(interrupted.workdir)
    assert (
        len(outputs) == 16
        and len(redone & {str(p.relative_to(interrupted.workdir)) for p in outputs}) >= 8
    )


def test_killed_run_leaves_no_half_written_outputs(interrupted):
    assert interrupted.unreadable_after_kills == []
    assert unreadable_outputs(interrupted.workdir / "results") == []
    # temporary files of jobs killed mid-write are gone once those jobs ran again
    assert temporary_files(interrupted.workdir / "results") == []


# --------------------------------------------------------------------------- determinism


def _comparable_json(obj, workdir: str):
    """JSON without provenance and timings, with the run folder replaced by a placeholder."""
    if isinstance(obj, dict):
        return {
            k: _comparable_json(v, workdir)
            for k, v in obj.items()
            if k != "provenance" and not k.endswith("seconds")
        }
    if isinstance(obj, list):
        return [_comparable_json(v, workdir) for v in obj]
    if isinstance(obj, str):
        return obj.replace(workdir, "<run>")
    return obj


def _results_files(workdir: Path) -> list[Path]:
    return sorted(
        p.relative_to(workdir)
        for p in (workdir / "results").rglob("*")
        if p.suffix in (".parquet", ".json") and "benchmarks" not in p.parts
    )


def test_same_seed_gives_identical_results(interrupted, repeat):
    first, second = interrupted.workdir, repeat
    files = _results_files(first)
    assert files == _results_files(second)
    assert {"metrics.json", "predictions.parquet", "per_speaker.parquet", "fold_metrics.json"} <= {
        f.name for f in files
    }
    for rel in files:
        if rel.suffix == ".json":
            a, b = (
                _comparable_json(json.loads((d / rel).read_text()), str(d)) for d in (first, second)
            )
            assert a == b, f"{rel} differs between two runs with the same seed"
        else:
            a, b = (
                read_table(d / rel)[0].replace(re.escape(str(d)), "<run>", regex=True)
                for d in (first, second)
            )
            pd.testing.assert_frame_equal(a, b, check_exact=True, obj=str(rel))
    metrics = json.loads((first / "results/identify/main/metrics.json").read_text())
    assert {"conformer", "stats_lr", "chance"} <= set(metrics["models"])


# --------------------------------------------------------------------------- bad input


@dataclass
class BadInputs:
    workdir: Path
    result: subprocess.CompletedProcess[str]
    expected: dict[tuple[str, str], str]  # (session, speaker) -> QC reason code ("" = ok)


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()


def _frames(path: str) -> list[np.ndarray]:
    cap = cv2.VideoCapture(path)
    out = []
    while (frame := cap.read())[0]:
        out.append(frame[1])
    cap.release()
    return out


@pytest.fixture(scope="module")
def bad_inputs(interrupted) -> BadInputs:
    """A user's table over the smoke videos, renamed to ids that look like numbers, plus
    broken videos; speaker "42" has a single session."""
    assert interrupted.returncode == 0
    workdir = interrupted.workdir.parent / "bad_inputs"
    videos = workdir / "videos"
    videos.mkdir(parents=True)
    manifest, _ = read_table(interrupted.workdir / "results/cohort/manifest.parquet")
    by_speaker = [
        g.sort_values("session_id")["video"].tolist()
        for _, g in manifest.groupby("speaker_id", sort=True)
    ]
    rows, expected = [], {}
    for speaker, paths in zip(("00123", "1e5", "007"), by_speaker, strict=False):
        for session, path in zip(("001", "002"), paths, strict=True):
            rows.append((speaker, session, path))
            expected[(session, speaker)] = ""
    rows.append(("42", "001", by_speaker[3][0]))
    expected[("001", "42")] = ""
    good = Path(by_speaker[0][0]).read_bytes()
    (videos / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(20_000))
    (videos / "truncated.mp4").write_bytes(good[: len(good) // 2])
    (videos / "empty.mp4").write_bytes(b"")
    rng = np.random.default_rng(1)
    _write_video(
        videos / "noise.mp4",
        [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(90)],
    )
    left, right = _frames(by_speaker[3][1]), _frames(by_speaker[1][0])
    _write_video(
        videos / "two_faces.mp4",
        [np.concatenate([a, b], axis=1) for a, b in zip(left, right, strict=False)],
    )
    bad = [
        ("00123", "003", "corrupt.mp4", "video_unreadable"),
        ("1e5", "003", "truncated.mp4", "video_unreadable"),
        ("007", "003", "empty.mp4", "video_empty"),
        ("00123", "004", "gone.mp4", "video_missing"),
        ("1e5", "004", "noise.mp4", "landmarks_no_face"),
        ("007", "004", "two_faces.mp4", "multiple_faces"),
    ]
    for speaker, session, name, code in bad:
        rows.append((speaker, session, name))
        expected[(session, speaker)] = code
    table = videos / "videos.csv"
    pd.DataFrame(rows, columns=["speaker_id", "session_id", "video"]).to_csv(table, index=False)
    overrides = {**TRIM, "dataset": {"kind": "manifest", "table": str(table)}}
    res = run_snakemake(workdir, *MANIFEST_TARGETS, overrides=overrides)
    return BadInputs(workdir, res, expected)


def test_bad_videos_are_excluded_with_reasons_and_the_run_completes(bad_inputs):
    res = bad_inputs.result
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    qc, _ = read_table(bad_inputs.workdir / "results/qc/videos.parquet")
    assert len(qc) == len(bad_inputs.expected) == 13  # nothing dropped
    got = {(r.session_id, r.speaker_id): r for r in qc.itertuples()}
    for key, code in bad_inputs.expected.items():
        row = got[key]
        assert row.reason_code == code, (key, row.reason)
        assert (row.status == "ok") == (code == ""), (key, row.reason)
        if code:
            assert row.reason, key
    assert "two faces" in got[("004", "007")].reason
    assert "0 bytes" in got[("003", "007")].reason
    metrics = json.loads((bad_inputs.workdir / "results/identify/main/metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["n_speakers"] == 3
    assert metrics["models"]["conformer"]["top1"] is not None


def test_single_session_speaker_is_left_out_of_cross_session_with_a_reason(bad_inputs):
    folds, _ = read_table(bad_inputs.workdir / "results/identify/main/folds.parquet")
    rows = folds[folds["speaker_id"] == "42"]
    assert len(rows) and (rows["split"] == "excluded").all()
    assert rows["reason"].str.contains("1 usable session").all()
    speakers, _ = read_table(bad_inputs.workdir / "results/dnr/speakers.parquet")
    assert np.isnan(speakers.set_index("speaker_id").loc["42", "dnr"])


def test_ids_that_look_like_numbers_stay_strings_end_to_end(bad_inputs):
    results = bad_inputs.workdir / "results"
    assert (results / "landmarks/001/00123.parquet").is_file()
    assert (results / "flame/001/007.parquet").is_file()
    ids = {"00123", "1e5", "007", "42"}
    tables = [
        "cohort/manifest.parquet",
        "qc/videos.parquet",
        "dnr/sessions.parquet",
        "dnr/speakers.parquet",
        "identify/main/folds.parquet",
        "identify/main/fold0/predictions.parquet",
        "identify/main/per_speaker.parquet",
    ]
    for name in tables:
        schema = pq.read_schema(results / name)
        df = pd.read_parquet(results / name)
        for col in ("speaker_id", "predicted_speaker_id", "session_id"):
            if col in df:
                assert schema.field(col).type == pa.string(), (name, col)
                assert set(df[col]) <= ids | {"001", "002", "003", "004"}, (name, col)
        assert set(df["speaker_id"]) & {"00123", "007"}, name
    _, meta = read_table(results / "flame/002/00123.parquet")
    assert (meta["session_id"], meta["speaker_id"]) == ("002", "00123")


def test_outputs_of_real_data_hold_no_image_data(bad_inputs):
    """dataset.kind: manifest without privacy.frames_in_figures: no frame figure, no
    embedded image, no pixel column, anywhere in results/ or logs/."""
    assert bad_inputs.result.returncode == 0
    results = bad_inputs.workdir / "results"
    assert (results / "figures/accuracy.png").is_file()  # the plots exist ...
    assert not list(results.glob("figures/landmark_frame.*"))  # ... the frame does not
    assert image_findings(results) == []
    assert image_findings(bad_inputs.workdir / "logs") == []


# --------------------------------------------------------------------------- provenance


def _parquet_and_json(workdir: Path) -> list[Path]:
    return sorted(p for p in (workdir / "results").rglob("*") if p.suffix in (".parquet", ".json"))


def test_every_table_and_json_records_version_config_hash_and_inputs(interrupted, bad_inputs):
    assert bad_inputs.result.returncode == 0
    for run in (interrupted.workdir, bad_inputs.workdir):
        files = _parquet_and_json(run)
        assert len(files) > 20
        problems = [p for f in files for p in provenance_problems(f, facedyn.__version__)]
        assert problems == []
        hashes = {provenance_of(f)["config_hash"] for f in files}
        assert len(hashes) == 1, hashes  # one run, one configuration
    # the fingerprint follows the inputs: per-video tables of different videos differ
    fingerprints = {
        provenance_of(p)["input_fingerprint"]
        for p in interrupted.workdir.glob("results/landmarks/*/*.parquet")
    }
    assert len(fingerprints) == 8
