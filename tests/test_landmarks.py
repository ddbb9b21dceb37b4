"""The landmarks stage: sampling, tracking, accuracy against ground truth, bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from facedyn.face.backends import Detection, DlibBackend
from facedyn.face.extract import COLUMNS, extract_landmarks, landmarks_array, run_landmarks
from facedyn.face.track import FaceTracker
from facedyn.face.video import iter_sampled_frames, sample_indices
from facedyn.face.video import read_all_frames as read_video
from facedyn.qc import build_qc
from facedyn.tables import read_table


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def dlib_backend() -> DlibBackend:
    return DlibBackend()


# --------------------------------------------------------------------------- sampling


@pytest.mark.parametrize(("src", "dst"), [(30, 15), (30, 7), (25, 10), (30, 30), (30, 60)])
def test_sampling_iterator_matches_indices(tmp_path, src, dst):
    frames = [np.full((32, 48, 3), k, np.uint8) for k in range(40)]
    video = write_video(tmp_path / "v.mp4", frames, fps=src)
    got = [f.index for f in iter_sampled_frames(video, dst)]
    assert got == sample_indices(40, src, dst).tolist()
    assert got[0] == 0
    expected_count = 40 if dst >= src else int(np.ceil(40 * dst / src))
    assert abs(len(got) - expected_count) <= 1


# --------------------------------------------------------------------------- tracking


class FakeBackend:
    """Faces at scripted boxes; landmarks = a grid inside the box."""

    name = "fake"

    def __init__(self, boxes_per_frame: list[list[np.ndarray]]) -> None:
        self.boxes = boxes_per_frame
        self.frame = -1
        self.detect_calls: list[int] = []

    @staticmethod
    def _lmk(box: np.ndarray) -> np.ndarray:
        t = np.linspace(0.1, 0.9, 68)
        return np.stack([box[0] + t * (box[2] - box[0]), box[1] + t[::-1] * (box[3] - box[1])], 1)

    def describe(self) -> dict[str, str]:
        return {"backend": self.name}

    def detect(self, rgb):
        self.detect_calls.append(self.frame)
        return [Detection(b, 1.0, self._lmk(b)) for b in self.boxes[self.frame]]

    def refine(self, rgb, box):
        # The face nearest the predicted box, as a real predictor would follow it.
        faces = self.boxes[self.frame]
        best = min(faces, key=lambda b: np.abs(b - box).sum()) if faces else box
        return Detection(np.asarray(box), float("nan"), self._lmk(best))


def _run(backend: FakeBackend, n: int, redetect: int = 5) -> list:
    tracker = FaceTracker(backend, redetect_every=redetect)
    out = []
    for f in range(n):
        backend.frame = f
        out.append(tracker.update(np.zeros((240, 320, 3), np.uint8)))
    return out


def test_detector_runs_on_keyframes_only():
    box = np.array([100.0, 80, 180, 160])
    backend = FakeBackend([[box]] * 20)
    res = _run(backend, 20, redetect=5)
    # frame 1 confirms the new track; then the detector runs every 5 frames
    assert backend.detect_calls == [0, 1, 6, 11, 16]
    assert all(r.detection is not None for r in res)
    assert not any(r.retract_previous for r in res)
    assert [r.detected_by_detector for r in res[:7]] == [
        True,
        True,
        False,
        False,
        False,
        False,
        True,
    ]


def test_an_unconfirmed_track_is_withdrawn():
    """A face the detector finds in one frame only (a false detection in a face-free scene)
    is withdrawn by the next frame's detector run; a face seen twice in place is kept."""
    box = np.array([100.0, 80, 180, 160])
    elsewhere = np.array([10.0, 10, 60, 60])
    boxes = [[], [box], [], [], [elsewhere], [box], [box], [box]]
    backend = FakeBackend(boxes)
    res = _run(backend, len(boxes), redetect=5)
    assert [r.retract_previous for r in res] == [
        False,
        False,
        True,
        False,
        False,
        True,
        False,
        False,
    ]
    assert backend.detect_calls == [0, 1, 2, 3, 4, 5, 6]
    assert res[6].detection is not None and res[7].detection is not None
    tracker = FaceTracker(FakeBackend([[box]]), redetect_every=5)
    tracker.update(np.zeros((240, 320, 3), np.uint8))
    assert tracker.tentative  # a video that ends here leaves the track unconfirmed


def test_largest_face_at_start_then_continuity_over_size():
    small = np.array([20.0, 80, 80, 140])
    big = np.array([160.0, 40, 300, 180])
    boxes = [[small]] * 10 + [[small, big]] * 20  # a bigger face appears later
    res = _run(FakeBackend(boxes), 30)
    centres = [r.detection.landmarks[:, 0].mean() for r in res]
    assert max(centres) < 100  # stayed on the face it started with
    res = _run(FakeBackend([[small, big]] * 5), 5)
    assert res[0].detection.landmarks[:, 0].mean() > 150  # largest at start


def test_lost_face_is_redetected():
    box = np.array([100.0, 80, 180, 160])
    boxes = [[box]] * 6 + [[]] * 5 + [[box + 30]] * 10
    backend = FakeBackend(boxes)
    res = _run(backend, 21, redetect=5)
    # The keyframe at 6 finds nothing: the track is dropped, and the detector runs on every
    # frame until the face is back (at 11, confirmed at 12).
    assert all(r.detection is None for r in res[6:11])
    assert backend.detect_calls[:9] == [0, 1, 6, 7, 8, 9, 10, 11, 12]
    assert res[-1].detection is not None
    assert abs(res[-1].detection.landmarks[:, 0].mean() - (box[0] + box[2]) / 2 - 30) < 1


def test_tracking_box_ignores_the_moving_mouth_and_brows():
    """The predicted box follows the rigid points only: an opening mouth or raised brows in
    one frame must not enlarge the next frame's box (that would feed expression back into
    the landmarks)."""
    box = np.array([100.0, 80, 180, 160])
    tracker = FaceTracker(FakeBackend([[box]]), redetect_every=5)
    tracker.update(np.zeros((240, 320, 3), np.uint8))
    lmk = tracker._last.landmarks.copy()
    before = tracker._predict_box(lmk)
    moved = lmk.copy()
    moved[48:68, 1] += 15  # mouth wide open
    moved[5:12, 1] += 15  # chin down with it
    moved[17:27, 1] -= 10  # brows up
    np.testing.assert_allclose(tracker._predict_box(moved), before)
    shifted = lmk + np.array([7.0, -3.0])  # the whole head moves: the box moves with it
    np.testing.assert_allclose(tracker._predict_box(shifted), before + np.array([7, -3, 7, -3]))


# --------------------------------------------------------------------------- real frames


def test_landmarks_against_ground_truth(rendered_videos, dlib_backend):
    """Detection rate and NME (inter-ocular) of the dlib stage on synthetic videos."""
    nmes, rates = [], []
    for video, truth in rendered_videos:
        df, meta = extract_landmarks(video, dlib_backend, target_fps=15)
        assert meta["status"] == "ok" and meta["sampled_fps"] == 15
        assert list(df.columns) == COLUMNS
        assert df["frame"].tolist() == list(range(0, 150, 2))
        rates.append(df["detected"].mean())
        target = landmarks_array(truth)[df["frame"]]  # truth uses the same lx/ly columns
        got = landmarks_array(df)
        iod = np.linalg.norm(target[:, 36] - target[:, 45], axis=1)
        nmes.append(np.nanmean(np.linalg.norm(got - target, axis=2), axis=1) / iod)
    nme = np.concatenate(nmes)
    print(f"detection rate {np.mean(rates):.3f}, median NME {np.nanmedian(nme):.4f}")
    assert np.mean(rates) >= 0.95
    assert np.nanmedian(nme) < 0.05


def test_two_faces_in_frame_keeps_the_speaker(rendered_videos, dlib_backend, tmp_path):
    video, _ = rendered_videos[0]
    frames = read_video(video)[:60]
    other = [cv2.resize(f, (160, 120)) for f in read_video(rendered_videos[1][0])[:60]]
    both = []
    for a, b in zip(frames, other, strict=True):
        canvas = np.zeros((240, 480, 3), np.uint8)
        canvas[:, :320] = a
        canvas[60:180, 320:] = b
        both.append(canvas)
    df, meta = extract_landmarks(write_video(tmp_path / "two.mp4", both), dlib_backend, 15)
    assert meta["status"] == "ok" and df["detected"].mean() > 0.9
    assert (df.loc[df["detected"], "lx30"] < 320).all()  # always the larger, left face


# --------------------------------------------------------------------------- bad input


def _noise_video(path: Path, n: int = 30) -> Path:
    rng = np.random.default_rng(0)
    return write_video(
        path, [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(n)]
    )


@pytest.mark.parametrize("kind", ["missing", "empty", "garbage", "no_face", "truncated"])
def test_bad_videos_give_a_table_with_a_reason(rendered_videos, dlib_backend, tmp_path, kind):
    path = tmp_path / "bad.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"not a video" * 1000)
    elif kind == "no_face":
        _noise_video(path)
    elif kind == "truncated":
        video, _ = rendered_videos[0]
        data = video.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.parquet"
    meta = run_landmarks(
        path, out, dlib_backend, {"fps": 15}, ids={"session_id": "s", "speaker_id": "p"}
    )
    df, stored = read_table(out)
    assert list(df.columns) == COLUMNS
    assert stored["status"] == meta["status"] and stored["reason"]
    expected = {
        "missing": "missing",
        "empty": "empty",
        "garbage": "unreadable",
        "no_face": "no_face",
    }
    if kind in expected:
        assert stored["status"] == expected[kind]
        assert df["detected"].sum() == 0
    else:  # a truncated mp4 either stops early or loses its index: never a crash
        assert stored["status"] in ("truncated", "unreadable", "ok")


def test_qc_excludes_with_reasons(tmp_path, dlib_backend):
    manifest = pd.DataFrame(
        {
            "session_id": ["a", "a", "b"],
            "speaker_id": ["x", "y", "x"],
            "status": ["ok", "ok", "missing"],
            "reason": ["", "", "file not found"],
        }
    )
    ok_path, face_less = tmp_path / "ok.parquet", tmp_path / "noface.parquet"
    run_landmarks(
        _noise_video(tmp_path / "n.mp4"),
        face_less,
        dlib_backend,
        {"fps": 15},
        ids={"session_id": "a", "speaker_id": "y"},
    )
    df = pd.DataFrame({c: [0.0] * 40 for c in COLUMNS}).assign(detected=True, frame=range(40))
    from facedyn.tables import write_table

    write_table(df, ok_path, {"status": "ok"})
    qc = build_qc(manifest, {("a", "x"): str(ok_path), ("a", "y"): str(face_less)})
    assert qc["status"].tolist() == ["ok", "excluded", "excluded"]
    assert "no_face" in qc.loc[1, "reason"] and "missing" in qc.loc[2, "reason"]
    assert qc.loc[0, "frames_valid"] == 40
    strict = build_qc(manifest, {("a", "x"): str(ok_path)}, min_valid_frames=50)
    assert "min_valid_frames" in strict.loc[0, "reason"]
