"""A fitted FLAME table projected back into its video reproduces the fitter's own residuals
(``nme``, ``rmse_px``), and needs the pinhole camera to do so."""

from __future__ import annotations

import numpy as np
import pytest
from fitted_video import H, W, make_fitted_video, make_head

from facedyn.face.ibug import landmark_nme
from facedyn.flame.reproject import fitted_landmarks
from facedyn.tables import read_table


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    return make_head(tmp_path_factory.mktemp("head"))


@pytest.fixture(scope="module")
def fitted_video(tmp_path_factory, head):
    return make_fitted_video(tmp_path_factory.mktemp("video"), head)


def test_reprojected_fit_reproduces_the_fitters_nme(head, fitted_video):
    flame, _ = read_table(fitted_video["flame"])
    lmk, _ = read_table(fitted_video["landmarks"])
    proj = fitted_landmarks(flame, head["model_json"], W, H)
    valid = flame["valid"].to_numpy(bool)
    assert valid.sum() == 8 and np.isnan(proj[~valid]).all()
    recomputed = np.array(
        [landmark_nme(proj[i], fitted_video["detected"][i]) for i in np.flatnonzero(valid)]
    )
    assert 0.005 < recomputed.mean() < 0.2  # a real residual, not a trivial zero
    np.testing.assert_allclose(recomputed, flame.loc[valid, "nme"], rtol=1e-3, atol=1e-5)
    # pixel residuals agree with the table's rmse_px too
    rmse = np.sqrt(((proj[valid] - fitted_video["detected"][valid]) ** 2).sum(-1).mean(1))
    np.testing.assert_allclose(rmse, flame.loc[valid, "rmse_px"], rtol=1e-3, atol=1e-4)
    assert lmk["frame"].tolist() == flame["frame"].tolist()


def test_reprojection_needs_the_pinhole_camera(head, fitted_video):
    flame, _ = read_table(fitted_video["flame"])
    flame["focal_px"] = np.nan  # as an imported weak-perspective fit
    with pytest.raises(ValueError, match="pinhole"):
        fitted_landmarks(flame, head["model_json"], W, H)
