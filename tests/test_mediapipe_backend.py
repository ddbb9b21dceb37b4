"""The MediaPipe face-mesh backend: iBUG-68 from the mesh, dense columns, real frames."""

from __future__ import annotations

import numpy as np
import pytest

from facedyn.face.backends import make_backend
from facedyn.face.extract import COLUMNS, dense_columns, extract_landmarks, landmarks_array
from facedyn.face.legibility import video_legibility
from facedyn.face.mediapipe_backend import (
    IBUG68_FROM_MESH,
    N_MESH_POINTS,
    MediaPipeBackend,
    ibug68_from_mesh,
)
from facedyn.face.video import read_all_frames


def test_ibug68_from_mesh_picks_and_averages_mesh_points():
    rng = np.random.default_rng(0)
    mesh = rng.normal(size=(3, N_MESH_POINTS, 2))
    lmk = ibug68_from_mesh(mesh)
    assert lmk.shape == (3, 68, 2) and len(IBUG68_FROM_MESH) == 68
    np.testing.assert_allclose(lmk[:, 30], mesh[:, 4])  # nose tip: one mesh point
    np.testing.assert_allclose(lmk[:, 27], (mesh[:, 168] + mesh[:, 6]) / 2)  # bridge: two
    used = {i for ids in IBUG68_FROM_MESH for i in ids}
    assert max(used) < 468  # iBUG points come from the surface mesh, not the iris
    with pytest.raises(ValueError, match="468"):
        ibug68_from_mesh(mesh[:, :100])


@pytest.fixture(scope="module")
def backend() -> MediaPipeBackend:
    return make_backend("mediapipe")  # type: ignore[return-value]


def test_blank_frame_has_no_face(backend):
    assert backend.detect(np.zeros((240, 320, 3), np.uint8)) == []
    lost = backend.refine(np.zeros((240, 320, 3), np.uint8), np.array([100.0, 80, 180, 160]))
    assert np.isnan(lost.landmarks).all()  # the tracker re-detects on NaN landmarks


def test_detects_the_rendered_face_with_dense_points(backend, rendered_videos):
    video, truth = rendered_videos[0]
    frame = read_all_frames(video)[0]
    faces = backend.detect(frame)
    assert len(faces) == 1
    face = faces[0]
    assert face.dense is not None and face.dense.shape == (N_MESH_POINTS, 2)
    np.testing.assert_allclose(face.landmarks, ibug68_from_mesh(face.dense))
    target = landmarks_array(truth.iloc[[0]])[0]
    iod = np.linalg.norm(target[36] - target[45])
    nme = np.linalg.norm(face.landmarks - target, axis=1).mean() / iod
    assert nme < 0.08
    # The dense points cover the face: the iris centres sit between the eye corners.
    for centre, (a, b) in ((468, (33, 133)), (473, (362, 263))):
        lo, hi = sorted((face.dense[a, 0], face.dense[b, 0]))
        assert lo < face.dense[centre, 0] < hi


def test_landmark_table_carries_dense_columns(backend, rendered_videos):
    video, truth = rendered_videos[1]
    df, meta = extract_landmarks(video, backend, target_fps=15)
    assert meta["status"] == "ok" and meta["dense_points"] == N_MESH_POINTS
    assert list(df.columns) == COLUMNS + dense_columns(N_MESH_POINTS)
    assert df["detected"].mean() >= 0.95
    found = df["detected"].to_numpy()
    dense = df[dense_columns(N_MESH_POINTS)].to_numpy()
    assert np.isfinite(dense[found]).all() and np.isnan(dense[~found]).all()
    xs = dense[found][:, :N_MESH_POINTS].reshape(-1, N_MESH_POINTS)
    ys = dense[found][:, N_MESH_POINTS:].reshape(-1, N_MESH_POINTS)
    np.testing.assert_allclose(
        ibug68_from_mesh(np.stack([xs, ys], -1)), landmarks_array(df)[found], atol=1e-3
    )
    leg = video_legibility(df, truth)
    print({k: round(v, 3) for k, v in leg.items() if k.endswith("_r") or k == "nme_median"})
    assert leg["mouth_opening_r"] > 0.8 and leg["nme_median"] < 0.08


def test_missing_install_is_named_before_any_job(monkeypatch):
    import importlib.util

    from facedyn.face import mediapipe_backend

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "mediapipe" else real(name, *a),
    )
    with pytest.raises(ImportError, match=r"pip install -e '\.\[mediapipe\]'"):
        mediapipe_backend.check_available()
