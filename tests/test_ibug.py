"""One inter-ocular distance and one NME for every stage, and the iBUG-68 polylines."""

import numpy as np
import pytest
import torch

from facedyn.face.ibug import (
    IBUG68_SEGMENTS,
    MIN_IOD_PX,
    OUTER_EYE_CORNERS,
    inter_ocular,
    landmark_nme,
    nme,
)


def _face(iod: float) -> np.ndarray:
    pts = np.zeros((68, 2))
    pts[:, 0] = np.linspace(0, iod, 68)
    pts[OUTER_EYE_CORNERS[0]] = [10.0, 20.0]
    pts[OUTER_EYE_CORNERS[1]] = [10.0 + iod, 20.0]
    return pts


def test_inter_ocular_distance_of_numpy_and_torch_landmarks():
    face = _face(40.0)
    assert inter_ocular(face) == pytest.approx(40.0)
    both = np.stack([face, _face(25.0)])
    np.testing.assert_allclose(inter_ocular(both), [40.0, 25.0])
    t = inter_ocular(torch.as_tensor(np.concatenate([both, np.zeros((2, 5, 2))], 1)))
    assert isinstance(t, torch.Tensor) and torch.allclose(
        t, torch.tensor([40.0, 25.0], dtype=t.dtype)
    )


def test_nme_is_the_mean_error_over_the_68_points_in_reference_iod():
    ref = _face(40.0)
    pred = ref + np.array([3.0, 4.0])  # every point 5 px off
    assert nme(pred, ref) == pytest.approx(5.0 / 40.0)
    dense = np.concatenate([pred, np.full((10, 2), 1e6)])  # points after the 68 are ignored
    assert nme(dense, np.concatenate([ref, np.zeros((10, 2))])) == pytest.approx(5.0 / 40.0)
    tiny = _face(0.0)
    assert nme(tiny + np.array([1.0, 0.0]), tiny) == pytest.approx(1.0 / MIN_IOD_PX)
    assert np.isnan(nme(np.full((68, 2), np.nan), ref))
    with pytest.raises(ValueError, match="68"):
        nme(np.zeros((5, 2)), np.zeros((5, 2)))


def test_landmark_nme_is_mean_error_over_interocular_distance():
    face = _face(50.0)
    assert landmark_nme(face, face) == 0.0
    assert landmark_nme(face + np.array([3.0, 4.0]), face) == pytest.approx(5.0 / 50.0)
    assert landmark_nme((face + 1.0).ravel(), face) == pytest.approx(np.sqrt(2) / 50.0)


def test_segments_cover_every_point_once_with_eyes_and_lips_closed():
    points = [k for seg, _ in IBUG68_SEGMENTS for k in seg]
    assert sorted(points) == list(range(68))
    closed = {seg.start for seg, is_closed in IBUG68_SEGMENTS if is_closed}
    assert closed == {36, 42, 48, 60}
