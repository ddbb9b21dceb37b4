"""The synthetic head's MediaPipe embedding, measured on its own renders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facedyn.face.extract import landmarks_array
from facedyn.face.mediapipe_backend import MediaPipeBackend
from facedyn.face.video import read_all_frames
from facedyn.flame import load_flame
from facedyn.flame.camera import project
from facedyn.flame.dense import load_dense_embedding
from facedyn.synthetic.dense_calibration import (
    calibrate_dense_embedding,
    closest_barycentric,
    snap_to_surface,
)


def test_closest_point_on_a_triangle():
    tri = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_allclose(closest_barycentric(np.array([0.2, 0.3, 5.0]), tri), [0.5, 0.2, 0.3])
    np.testing.assert_allclose(closest_barycentric(np.array([-1.0, -1, 0]), tri), [1, 0, 0])
    np.testing.assert_allclose(closest_barycentric(np.array([1.0, 1, 0]), tri), [0, 0.5, 0.5])
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    verts = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    f, b = snap_to_surface(np.array([[0.9, 0.8, 0.1]]), verts, faces)
    np.testing.assert_allclose(b[0] @ verts[faces[f[0]]], [0.9, 0.8, 0.0], atol=1e-12)


@pytest.fixture(scope="module")
def calibrated(synthetic_head, tmp_path_factory):
    out = tmp_path_factory.mktemp("dense") / "mediapipe_landmark_embedding.npz"
    calibrate_dense_embedding(
        synthetic_head["model"],
        synthetic_head["landmark_embedding"],
        synthetic_head["components"],
        out,
        every_n_frames=15,
        workers=2,
        cohort={"n_speakers": 2, "duration_s": 3.0},
    )
    return load_dense_embedding(out)


def test_embedding_puts_the_points_where_mediapipe_reads_them(
    calibrated, synthetic_head, rendered_videos
):
    """On another cohort's frames (other speakers, other seed), the embedding's points
    projected from the truth land where MediaPipe puts them."""
    assert len(calibrated) >= 300 and calibrated.landmark_indices.max() < 468
    head = load_flame(
        synthetic_head["model"],
        20,
        15,
        synthetic_head["landmark_embedding"],
        dtype=torch.float64,
        dense_embedding=calibrated,
    )
    backend = MediaPipeBackend(max_faces=1)
    errors = []
    for video, truth in rendered_videos[:2]:
        images = read_all_frames(video)
        for row in truth.iloc[::20].to_dict("records"):
            image = images[int(row["frame"])]
            found = backend.detect(image)
            assert found
            pose = torch.zeros(1, 15, dtype=torch.float64)
            pose[0, :3] = torch.tensor([row["rot_0"], row["rot_1"], row["rot_2"]])
            pose[0, 6:9] = torch.tensor([row["jaw_0"], row["jaw_1"], row["jaw_2"]])
            shape = torch.tensor([[row[f"shape_{k:03d}"] for k in range(20)]])
            expr = torch.tensor([[row[f"expr_{k:03d}"] for k in range(15)]])
            h, w = image.shape[:2]
            trans = torch.tensor([[row["tx"], row["ty"], row["tz"]]], dtype=torch.float64)
            with torch.no_grad():
                pts = project(
                    head.landmarks(shape, expr, pose),
                    trans,
                    row["focal_px"],
                    (w - 1) / 2,
                    (h - 1) / 2,
                )[0].numpy()
            true68 = landmarks_array(truth.iloc[[int(row["frame"])]])[0]
            np.testing.assert_allclose(pts[:68], true68, atol=1e-3)  # the truth's own 68
            iod = np.linalg.norm(true68[36] - true68[45])
            read = found[0].dense[calibrated.landmark_indices]
            errors.append(np.median(np.linalg.norm(pts[68:] - read, axis=1)) / iod)
    backend.close()
    print(f"median distance of embedded to detected points: {np.median(errors):.3f} IOD")
    assert np.median(errors) < 0.05
