"""Small faces are found, face-free video stays face-free, and QC says which is which."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facedyn.face.backends import HOG_WINDOW_PX, DlibBackend, plausible_face, upsampling_for
from facedyn.face.extract import extract_landmarks, landmarks_array, run_landmarks
from facedyn.face.ibug import nme
from facedyn.face.video import read_all_frames
from facedyn.qc import REASON_CODES, build_qc
from facedyn.synthetic.probe_videos import (
    FACE_FREE_SCENES,
    downscale_video,
    drifting_texture_frames,
    panning_frames,
    scale_points,
    scene_images,
    write_video,
)


def _iod(truth: pd.DataFrame) -> float:
    lmk = landmarks_array(truth)
    return float(np.nanmedian(np.linalg.norm(lmk[:, 36] - lmk[:, 45], axis=-1)))


def test_upsampling_follows_the_face_size():
    assert upsampling_for(200, max_upsample=2) == 0
    assert upsampling_for(HOG_WINDOW_PX * 1.25, max_upsample=2) == 0
    assert upsampling_for(HOG_WINDOW_PX, max_upsample=2) == 1  # no margin left at level 0
    assert upsampling_for(45, max_upsample=2) == 2
    assert upsampling_for(45, max_upsample=1) == 1  # capped
    assert upsampling_for(10, max_upsample=0) == 0


def test_plausible_face_accepts_faces_and_rejects_broken_layouts(rendered_videos):
    lmk = landmarks_array(rendered_videos[0][1])[::10]
    boxes = [np.r_[p.min(0), p.max(0)] for p in lmk]
    assert all(plausible_face(p, b) for p, b in zip(lmk, boxes, strict=True))
    face, box = lmk[0], boxes[0]
    mirrored = face * [-1, 1]
    assert plausible_face(mirrored, np.r_[mirrored.min(0), mirrored.max(0)])
    upside_down = face.copy()
    upside_down[48:68] = face[27:36].mean(0) - (
        face[48:68] - face[27:36].mean(0)
    )  # mouth above nose
    assert not plausible_face(upside_down, box)
    collapsed = np.repeat(face[:1], 68, axis=0)
    assert not plausible_face(collapsed, box)
    too_wide = box.copy()
    too_wide[2] = box[0] + 8 * (box[2] - box[0])  # a box eight times the face's width
    assert not plausible_face(face, too_wide)


@pytest.fixture(scope="module")
def small_face_video(rendered_videos, tmp_path_factory):
    """The first cohort video shrunk to an inter-ocular distance of 22 px, with its truth."""
    video, truth = rendered_videos[0]
    factor = 22.0 / _iod(truth)
    dst = downscale_video(video, tmp_path_factory.mktemp("small") / "small.mp4", factor)
    return dst, truth, factor


def test_small_faces_are_found_and_tracked_by_default(small_face_video):
    video, truth, factor = small_face_video
    df, meta = extract_landmarks(video, DlibBackend(), target_fps=15)
    assert meta["status"] == "ok"
    assert df["detected"].mean() >= 0.95
    target = scale_points(landmarks_array(truth)[df["frame"]], factor)
    assert np.nanmedian(nme(landmarks_array(df), target)) < 0.08
    assert 15 < meta["iod_px_median"] < 30
    assert set(meta["detector_runs_per_upsample"]) == {"1"}  # the frame size chose level 1


def test_a_face_too_small_for_the_settings_is_told_apart_from_no_face(small_face_video, tmp_path):
    video, _, _ = small_face_video
    meta = run_landmarks(
        video,
        tmp_path / "t.parquet",
        DlibBackend(upsample=0),
        {"fps": 15},
        ids={"session_id": "s", "speaker_id": "p"},
    )
    assert meta["status"] == "face_too_small" and meta["frames_detected"] == 0
    assert "px" in meta["reason"] and "max_upsample" in meta["reason"]
    manifest = pd.DataFrame(
        {"session_id": ["s"], "speaker_id": ["p"], "status": ["ok"], "reason": [""]}
    )
    qc = build_qc(manifest, {("s", "p"): str(tmp_path / "t.parquet")})
    assert qc.loc[0, "reason_code"] == "landmarks_face_too_small"
    assert qc.loc[0, "reason_code"] in REASON_CODES


def test_the_retry_at_a_finer_scale_finds_a_face_the_first_level_misses(small_face_video):
    video, _, _ = small_face_video
    backend = DlibBackend()
    frame = read_all_frames(video)[0]
    backend.start_video(640, 480)  # a large frame: the first keyframe starts at level 0
    faces = backend.detect(frame)
    assert len(faces) == 1 and backend.runs_per_level == {0: 1, 1: 1}
    assert not DlibBackend(upsample=0).detect(frame)


def test_the_scenes_ship_with_installed_packages():
    scenes = scene_images()
    assert len(scenes) >= 12 and set(scenes) <= set(FACE_FREE_SCENES)
    assert all(im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3 for im in scenes.values())


@pytest.mark.parametrize("size", [(320, 240), (176, 144)])
def test_face_free_video_yields_no_face(tmp_path, size):
    rng = np.random.default_rng(3)
    scenes = scene_images(["china", "chelsea", "brick", "coffee"])
    frames = [f for image in scenes.values() for f in panning_frames(image, size, 40, rng)]
    frames += list(drifting_texture_frames(size, 40, rng))
    video = write_video(tmp_path / "scenery.mp4", frames)
    df, meta = extract_landmarks(video, DlibBackend(), target_fps=15)
    assert meta["status"] == "no_face"
    assert df["detected"].sum() == 0


def test_a_face_in_one_frame_only_is_withdrawn(rendered_videos, tmp_path):
    """A "face" that the next frame's detector does not find again is not a track."""
    video, _ = rendered_videos[0]
    face = read_all_frames(video)[0]
    rng = np.random.default_rng(0)
    texture = list(drifting_texture_frames(face.shape[1::-1], 30, rng))
    frames = [*texture[:10], face, *texture[10:]]  # source frame 10 is sampled at 15 fps
    df, meta = extract_landmarks(write_video(tmp_path / "flash.mp4", frames), DlibBackend(), 15)
    assert 10 in df["frame"].tolist()
    assert df["detected"].sum() == 0 and meta["status"] == "no_face"


def test_qc_names_the_face_size_when_too_few_frames_have_a_face(tmp_path):
    from facedyn.face.extract import COLUMNS
    from facedyn.tables import write_table

    df = pd.DataFrame({c: [0.0] * 40 for c in COLUMNS}).assign(
        detected=[True] * 10 + [False] * 30, frame=range(40)
    )
    write_table(
        df,
        tmp_path / "few.parquet",
        {"status": "ok", "face_px_median": 41.6, "iod_px_median": 19.2},
    )
    manifest = pd.DataFrame(
        {"session_id": ["s"], "speaker_id": ["p"], "status": ["ok"], "reason": [""]}
    )
    qc = build_qc(manifest, {("s", "p"): str(tmp_path / "few.parquet")})
    assert qc.loc[0, "reason_code"] == "few_face_frames"
    assert "faces of about 42 px (inter-ocular 19 px)" in qc.loc[0, "reason"]
