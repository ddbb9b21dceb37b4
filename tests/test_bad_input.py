"""Bad input that is not per-video data stops the run before any job with a message that
names the problem and the fix; per-video problems become QC exclusions with a reason, which
the summary's QC section counts. The config checks that stop a run are in test_config.py, the
whole-pipeline cases in test_workflow_robustness.py; the library's own checks of each loader in
test_datasets, test_landmarks, test_importer and test_flame_core.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flame_factory import (
    BROKEN_FLAME_CASES,
    broken_flame_files,
)

from facedyn.datasets.records import ManifestError
from facedyn.datasets.table import check_table
from facedyn.face.backends import Detection
from facedyn.face.extract import COLUMNS
from facedyn.face.probe import probe_video
from facedyn.face.track import FaceTracker, competing_faces
from facedyn.flame.head_model import check_head_model
from facedyn.flame.io import FlameModelError
from facedyn.flame.stage import run_fit
from facedyn.plots.summary import qc_section
from facedyn.qc import REASON_CODES, build_qc
from facedyn.runtime import provenance
from facedyn.tables import read_table, write_table

# --------------------------------------------------------------------------- helpers


def _landmark_table(path: Path, n: int = 60, detected: bool = True, **meta) -> Path:
    df = pd.DataFrame({c: [0.0] * n for c in COLUMNS}).assign(
        detected=detected, tracked=False, frame=range(0, 2 * n, 2), time_s=np.arange(n) / 15.0
    )
    return write_table(
        df,
        path,
        {
            "status": "ok",
            "session_id": "001",
            "speaker_id": "00123",
            "sampled_fps": 15.0,
            "width": 320,
            "height": 240,
            **meta,
        },
    )


def _manifest(*keys: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "session_id": [k[0] for k in keys],
            "speaker_id": [k[1] for k in keys],
            "status": "ok",
            "reason": "",
        }
    )


# --------------------------------------------------------------------------- two faces


class _TwoFaces:
    """A backend that always sees two faces of the same size."""

    name = "fake"

    def __init__(self) -> None:
        self.boxes = [np.array([10.0, 40, 110, 140]), np.array([200.0, 40, 300, 140])]

    def describe(self) -> dict[str, str]:
        return {"backend": self.name}

    def _face(self, box: np.ndarray) -> Detection:
        grid = np.stack(
            np.meshgrid(np.linspace(box[0], box[2], 17), np.linspace(box[1], box[3], 4)), -1
        ).reshape(-1, 2)[:68]
        return Detection(box.copy(), 1.0, grid)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return [self._face(b) for b in self.boxes]

    def refine(self, rgb: np.ndarray, box: np.ndarray) -> Detection:
        return self._face(self.boxes[0])


def test_tracker_counts_detector_runs_that_see_several_faces():
    tracker = FaceTracker(_TwoFaces(), redetect_every=5)
    for _ in range(20):
        assert tracker.update(np.zeros((240, 320, 3), np.uint8)).detection is not None
    # frame 1 confirms the new track, then keyframes every 5 frames: 0, 1, 6, 11, 16
    assert tracker.detector_runs == 5 and tracker.multi_face_runs == 5


def test_small_faint_or_overlapping_faces_do_not_compete_with_the_speaker():
    def face(x0: float, size: float, score: float) -> Detection:
        return Detection(np.array([x0, 40, x0 + size, 40 + size]), score, np.zeros((68, 2)))

    speaker = face(10, 100, 1.8)
    assert competing_faces([speaker, face(200, 100, 1.6)], speaker) == 1  # a second person
    assert competing_faces([speaker, face(200, 40, 1.6)], speaker) == 0  # far behind
    assert competing_faces([speaker, face(200, 100, 0.05)], speaker) == 0  # a faint false hit
    assert competing_faces([speaker, face(20, 100, 1.6)], speaker) == 0  # the same face


@pytest.mark.parametrize(("multi", "status"), [(10, "excluded"), (2, "ok")])
def test_qc_excludes_videos_that_keep_showing_two_faces(tmp_path, multi, status):
    table = _landmark_table(tmp_path / "l.parquet", detector_runs=10, multi_face_runs=multi)
    qc = build_qc(_manifest(("001", "00123")), {("001", "00123"): str(table)})
    assert qc.loc[0, "status"] == status
    if status == "excluded":
        assert qc.loc[0, "reason_code"] == "multiple_faces"
        assert "10 of 10 detector runs" in qc.loc[0, "reason"]
        assert "qc.max_multi_face_fraction" in qc.loc[0, "reason"]
    loose = build_qc(
        _manifest(("001", "00123")), {("001", "00123"): str(table)}, max_multi_face_fraction=1.0
    )
    assert loose.loc[0, "status"] == "ok"


# --------------------------------------------------------------------------- importer .npz


def _fit_import(tmp_path: Path, arrays: dict[str, np.ndarray] | None) -> tuple[Path, Path]:
    """run_fit with fit.backend import on one video; ``arrays`` None: no .npz at all."""
    landmarks = _landmark_table(tmp_path / "landmarks.parquet", n=12)
    model = tmp_path / "model.json"
    model.write_text(
        json.dumps({"n_shape": 20, "n_expr": 10, "model_sha256": "0" * 64, "synthetic": True})
    )
    npz_dir = tmp_path / "npz"
    (npz_dir / "001").mkdir(parents=True)
    if arrays is not None:
        np.savez(npz_dir / "001" / "00123.npz", **arrays)
    out = tmp_path / "flame.parquet"
    run_fit(
        landmarks,
        model,
        out,
        {"backend": "import", "import": {"dir": str(npz_dir), "tracker": "deca"}},
        provenance=provenance({"a": 1}, inputs=[landmarks, model]),
    )
    return landmarks, out


def _deca(n: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "shape": rng.normal(size=(n, 100)),
        "expression": rng.normal(size=(n, 50)),
        "pose": rng.normal(scale=0.2, size=(n, 6)),
        "cam": rng.normal(size=(n, 3)),
    }


@pytest.mark.parametrize("case", ["mismatched_lengths", "missing_file", "too_few_components"])
def test_bad_importer_file_is_a_qc_exclusion_not_a_failed_job(tmp_path, case):
    arrays = _deca()
    if case == "mismatched_lengths":
        arrays["cam"] = arrays["cam"][:-1]
    elif case == "too_few_components":
        arrays["expression"] = arrays["expression"][:, :5]
    landmarks, out = _fit_import(tmp_path, None if case == "missing_file" else arrays)
    table, meta = read_table(out)
    assert meta["status"] == "import_failed" and len(table) == 12 and not table["valid"].any()
    expected = {
        "mismatched_lengths": "'cam' has 11 rows but 'expression' has 12",
        "missing_file": "not a readable .npz",
        "too_few_components": "flame.n_expr",
    }[case]
    assert expected in meta["reason"]
    assert meta["provenance"]["input_fingerprint"]
    qc = build_qc(
        _manifest(("001", "00123")),
        {("001", "00123"): str(landmarks)},
        flame_paths={("001", "00123"): str(out)},
    )
    assert qc.loc[0, "status"] == "excluded" and qc.loc[0, "reason_code"] == "fit_import_failed"
    assert expected in qc.loc[0, "reason"]


def test_good_importer_file_passes_qc(tmp_path):
    landmarks, out = _fit_import(tmp_path, _deca())
    qc = build_qc(
        _manifest(("001", "00123")),
        {("001", "00123"): str(landmarks)},
        flame_paths={("001", "00123"): str(out)},
        min_valid_frames=10,
    )
    assert qc.loc[0, "status"] == "ok", qc.loc[0, "reason"]


# --------------------------------------------------------------------------- unreadable video


def test_video_without_read_permission_is_unreadable(tmp_path, monkeypatch):
    """(As root, permissions cannot be taken away: the access check is simulated.)"""
    import facedyn.face.probe as probe

    video = tmp_path / "v.mp4"
    video.write_bytes(b"\x00" * 100)
    monkeypatch.setattr(probe.os, "access", lambda path, mode: False)
    info = probe_video(video)
    assert info.status == "unreadable" and "permission" in info.reason


# --------------------------------------------------------------------------- manifest tables


def test_table_check_names_duplicates_and_keeps_numeric_looking_ids(tmp_path):
    (tmp_path / "ok.csv").write_text(
        "speaker_id,session_id,video\n00123,001,a.mp4\n1e5,001,b.mp4\n00123,002,missing.mp4\n"
    )
    assert check_table(tmp_path / "ok.csv") == 3  # videos are not probed here
    (tmp_path / "dup.csv").write_text(
        "speaker_id,session_id,video\n00123,001,a.mp4\n123,001,b.mp4\n00123,001,c.mp4\n"
    )
    with pytest.raises(ManifestError, match=r"\('001', '00123'\) x2 \(rows 1, 3\)"):
        check_table(tmp_path / "dup.csv")


# --------------------------------------------------------------------------- FLAME files


@pytest.mark.parametrize(("case", "key", "message"), BROKEN_FLAME_CASES)
def test_head_model_check_names_the_config_key_and_the_problem(tmp_path, case, key, message):
    model, embedding = broken_flame_files(tmp_path, case)
    n_expr = 120 if case == "too_many_components" else 10
    with pytest.raises(FlameModelError) as err:
        check_head_model(model, embedding, n_shape=10, n_expr=n_expr)
    assert str(err.value).startswith(f"config key `{key}`") and message in str(err.value)


def test_good_head_model_passes_the_check(tmp_path):
    model, embedding = broken_flame_files(tmp_path, "good")
    check_head_model(model, embedding, n_shape=10, n_expr=10)


# --------------------------------------------------------------------------- summary


def test_summary_counts_every_qc_exclusion_and_fold_exclusion():
    qc = pd.DataFrame(
        {
            "session_id": ["1", "1", "2", "2", "3", "3"],
            "speaker_id": ["a", "b", "a", "b", "a", "c"],
            "status": ["ok", "excluded", "excluded", "ok", "excluded", "ok"],
            "reason": [
                "",
                "video missing: ...",
                "video missing: ...",
                "decoding stopped",
                "landmarks no_face: ...",
                "",
            ],
            "reason_code": [
                "",
                "video_missing",
                "video_missing",
                "truncated",
                "landmarks_no_face",
                "",
            ],
        }
    )
    folds = {
        "main": {
            "1/b": "video missing: ...",
            "3/c": "speaker has 1 usable session (cross_session needs 2)",
        }
    }
    text = "\n".join(qc_section(qc, folds))
    assert "6 videos, 3 ok, 3 excluded" in text
    assert f"| {REASON_CODES['video_missing']} | `video_missing` | 2 |" in text
    assert "| `landmarks_no_face` | 1 |" in text and "| `truncated` | 1 |" in text
    # the fold exclusion of a QC-excluded video is not counted twice
    assert "| `main` | speaker has 1 usable session (cross_session needs 2) | 1 |" in text
    assert text.count("| `main` |") == 1
