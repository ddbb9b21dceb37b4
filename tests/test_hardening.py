"""Bad input that is not per-video data stops the run before any job with a message that
names the problem and the fix; per-video problems become QC exclusions with a reason.
The whole-pipeline cases are in test_pipeline_hardening.py; the library's own
checks of each loader in test_datasets, test_landmarks, test_importer and test_flame_core.

Also here: input fingerprints, atomic writes under SIGTERM and after SIGKILL, the summary's
QC section and the output scanner the privacy test relies on.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flame_factory import random_embedding_dict, random_flame_dict
from output_checks import image_findings
from workflow_utils import run_snakemake

from facedyn.atomic import atomic_write, atomic_write_bytes
from facedyn.datasets.records import ManifestError
from facedyn.datasets.table import check_table
from facedyn.face.backends import Detection
from facedyn.face.extract import COLUMNS
from facedyn.face.probe import probe_video
from facedyn.face.track import FaceTracker, competing_faces
from facedyn.flame.io import FlameModelError
from facedyn.flame.stage import run_fit
from facedyn.flame.summary import check_head_model
from facedyn.plots.summary import qc_section
from facedyn.qc import REASON_CODES, build_qc
from facedyn.runtime import input_fingerprint, provenance
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


def _table(tmp_path: Path, text: str) -> dict:
    path = tmp_path / "videos.csv"
    path.write_text(text)
    return {"dataset": {"kind": "manifest", "table": str(path)}}


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "speaker_id,session_id,video\n00123,001,a.mp4\n00123,001,b.mp4\n",
            "('001', '00123') x2 (rows 1, 2)",
        ),
        ("speaker,session_id,video\np1,001,a.mp4\n", "lacks required column(s) speaker_id"),
    ],
)
def test_bad_manifest_table_fails_before_any_job(tmp_path, text, named):
    res = run_snakemake(tmp_path, "-n", overrides=_table(tmp_path, text))  # fails parsing
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "dataset.table" in out and named in out
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


# --------------------------------------------------------------------------- FLAME files


def _flame_files(tmp_path: Path, case: str) -> tuple[Path, Path]:
    model = random_flame_dict(seed=1, n_v=60, n_f=40)
    embedding = random_embedding_dict(40)
    if case == "missing_key":
        del model["shapedirs"]
    elif case == "wrong_shape":
        model["weights"] = np.zeros((60, 4))
    elif case == "embedding_empty":
        embedding = {}
    elif case == "embedding_wrong_shape":
        embedding["static_lmk_faces_idx"] = embedding["static_lmk_faces_idx"][:50]
    model_path, emb_path = tmp_path / "generic_model.pkl", tmp_path / "landmark_embedding.npy"
    model_path.write_bytes(pickle.dumps(model, protocol=2))
    np.save(emb_path, np.array(embedding, dtype=object), allow_pickle=True)
    return model_path, emb_path


FLAME_CASES = [
    ("missing_key", "flame.model", "missing key(s) ['shapedirs']"),
    ("wrong_shape", "flame.model", "'weights' must have shape (60, 5)"),
    ("too_many_components", "flame.n_expr", "set flame.n_expr to at most 100"),
    ("embedding_empty", "flame.landmark_embedding", "missing key(s)"),
    (
        "embedding_wrong_shape",
        "flame.landmark_embedding",
        "'static_lmk_faces_idx' must have shape (51,)",
    ),
]


@pytest.mark.parametrize(("case", "key", "message"), FLAME_CASES)
def test_head_model_check_names_the_config_key_and_the_problem(tmp_path, case, key, message):
    model, embedding = _flame_files(tmp_path, case)
    n_expr = 120 if case == "too_many_components" else 10
    with pytest.raises(FlameModelError) as err:
        check_head_model(model, embedding, n_shape=10, n_expr=n_expr)
    assert str(err.value).startswith(f"config key `{key}`") and message in str(err.value)


def test_good_head_model_passes_the_check(tmp_path):
    model, embedding = _flame_files(tmp_path, "good")
    check_head_model(model, embedding, n_shape=10, n_expr=10)


@pytest.mark.workflow
@pytest.mark.parametrize(("case", "key", "message"), [FLAME_CASES[0], FLAME_CASES[4]])
def test_bad_flame_file_fails_before_any_job(tmp_path, case, key, message):
    model, embedding = _flame_files(tmp_path, case)
    res = run_snakemake(
        tmp_path,
        "-n",
        overrides={
            "flame": {  # a dry run fails too
                "model": str(model),
                "landmark_embedding": str(embedding),
                "n_shape": 10,
                "n_expr": 10,
            }
        },
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert key in out and message in out
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


# --------------------------------------------------------------------------- config values


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"qc": {"max_multi_face_fraction": 1.5}}, "max_multi_face_fraction"),
        ({"privacy": {"frames_in_figures": "yes"}}, "frames_in_figures"),
    ],
)
def test_more_invalid_config_values_fail_before_any_job(tmp_path, override, named):
    res = run_snakemake(tmp_path, "-n", overrides=override)
    assert res.returncode != 0 and named in res.stdout + res.stderr
    assert not (tmp_path / "results").exists()


# --------------------------------------------------------------------------- fingerprints


def test_input_fingerprint_follows_the_inputs(tmp_path, monkeypatch):
    a, b = tmp_path / "a.parquet", tmp_path / "b.mp4"
    a.write_bytes(b"table")
    b.write_bytes(b"video" * 100)
    first = input_fingerprint([a, b])
    assert first == input_fingerprint([str(b), a, a])  # order and repeats do not matter
    # 16 hex digits: the head of sha256 over the sorted identities (path and content hash of
    # a small file), one a line, recomputed here from the files' bytes
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    identities = sorted(f"{p}\0sha256:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in (a, b))
    assert first == hashlib.sha256("".join(f"{i}\n" for i in identities).encode()).hexdigest()[:16]
    a.write_bytes(b"tablE")  # same size, other content
    assert input_fingerprint([a, b]) != first
    assert input_fingerprint([a]) != input_fingerprint([a, b])
    assert input_fingerprint([a, tmp_path / "gone"]) != input_fingerprint([a])
    # large files: size and mtime, not content (a video is never read for this)
    import facedyn.runtime as runtime

    monkeypatch.setattr(runtime, "CONTENT_HASH_MAX_BYTES", 10)
    big = input_fingerprint([b])
    b.write_bytes(b"VIDEO" * 100)
    os.utime(b, ns=(b.stat().st_atime_ns, b.stat().st_mtime_ns + 10**9))
    assert input_fingerprint([b]) != big
    prov = provenance({"seed": 0}, inputs=[a, b])
    assert {"facedyn_version", "config_hash", "input_fingerprint"} <= set(prov)
    assert prov["n_inputs"] == 2


# --------------------------------------------------------------------------- atomic writes


def test_leftover_temporary_file_of_a_killed_write_is_removed(tmp_path):
    target = tmp_path / "t.parquet"
    stale = tmp_path / ".t.parquet.abc123.tmp"
    stale.write_bytes(b"half a table")
    other = tmp_path / ".u.parquet.abc123.tmp"  # another output's: not touched
    other.write_bytes(b"x")
    atomic_write_bytes(target, b"whole")
    assert target.read_bytes() == b"whole" and not stale.exists() and other.exists()


def test_sigterm_during_a_write_leaves_neither_output_nor_temporary_file(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from facedyn.atomic import atomic_write
        from facedyn.runtime import exit_on_sigterm
        exit_on_sigterm()
        def slow(tmp):
            tmp.write_bytes(b"partial")
            print("writing", flush=True)
            time.sleep(30)
        atomic_write(Path({str(tmp_path / "out.json")!r}), slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    assert list(tmp_path.glob(".out.json.*.tmp"))  # the write is under way
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_never_shows_a_partial_file(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_bytes(target, b'{"old": true}')
    seen = []

    def write(tmp: Path) -> None:
        tmp.write_bytes(b'{"new": ')
        seen.append(target.read_bytes())  # a reader during the write sees the old file
        time.sleep(0.01)
        tmp.write_bytes(b'{"new": true}')

    atomic_write(target, write)
    assert seen == [b'{"old": true}'] and json.loads(target.read_text()) == {"new": True}


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


# --------------------------------------------------------------------------- privacy scan


def test_image_scan_finds_embedded_images(tmp_path):
    """The scanner the privacy test relies on must be able to fail."""
    import base64

    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 50
    results = tmp_path / "results"
    (results / "figures").mkdir(parents=True)
    (results / "figures/accuracy.png").write_bytes(png)  # a plot: allowed
    (results / "figures/accuracy.pdf").write_bytes(b"%PDF-1.4 /Subtype /Form")
    assert image_findings(results) == []
    write_table(pd.DataFrame({"x": [1.0]}), results / "clean.parquet", {"a": 1})
    write_table(pd.DataFrame({"frame": [png]}), results / "blob.parquet")
    (results / "meta.json").write_text(
        json.dumps({"thumb": "data:image/png;base64," + base64.b64encode(png).decode()})
    )
    (results / "x.bin").write_bytes(b"\x00\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    (results / "figures/landmark_frame.png").write_bytes(png)
    (results / "figures/cmc.pdf").write_bytes(b"%PDF-1.4 /Subtype /Image")
    (results / "frames.npy").write_bytes(b"\x93NUMPY")
    found = "\n".join(image_findings(results))
    for expected in (
        "blob.parquet: contains a PNG",
        "blob.parquet: column 'frame'",
        "meta.json: contains a base64",
        "x.bin: contains a JPEG",
        "landmark_frame.png: the video-frame figure",
        "cmc.pdf: the PDF embeds a raster image",
        "frames.npy: image or video",
    ):
        assert expected in found
    assert "clean.parquet" not in found
