"""The landmark-frame figure: detected and fitted landmarks drawn on one video frame, the
privacy gate that keeps real participants' frames out of figures by default, and the stage
that picks the frame and draws it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fitted_video import H, N, W, make_fitted_video, make_head
from matplotlib.figure import Figure

from facedyn.face.ibug import landmark_nme
from facedyn.face.video import read_video_frame
from facedyn.plots import frames as F
from facedyn.plots.stage import median_nme_frame, run_landmark_frame_figure
from facedyn.plots.style import save_figure
from facedyn.privacy import frames_allowed
from facedyn.tables import read_table


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    return make_head(tmp_path_factory.mktemp("head"))


@pytest.fixture(scope="module")
def fitted_video(tmp_path_factory, head):
    return make_fitted_video(tmp_path_factory.mktemp("video"), head)


def _face(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A plausible 68-point layout (detected, fitted) on a 320 x 240 noise image."""
    rng = np.random.default_rng(seed)
    angle = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    base = np.stack([160 + 50 * np.cos(angle), 120 + 60 * np.sin(angle)], 1)
    base[36], base[45] = [135, 100], [185, 100]  # outer eye corners: 50 px apart
    image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    return image, base, base + rng.normal(0, 1.0, base.shape)


# --------------------------------------------------------------------------- the figure


def test_landmark_frame_writes_png_and_pdf_with_nme(tmp_path):
    image, detected, fitted = _face()
    fig = F.landmark_frame(
        image,
        detected,
        fitted,
        dataset_kind="synthetic",
        true_xy=detected + 0.5,
        subtitle="smoke · frame 4",
    )
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    fig.canvas.draw()
    for ax in fig.axes:
        assert not ax.get_xticks().size and not ax.get_yticks().size  # no ticks on a photo
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    nme = 100 * landmark_nme(fitted, detected)
    assert f"NME fitted vs. detected: {nme:.1f} %" in texts
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == [F.LANDMARK_STYLE[k]["label"] for k in ("detected", "fitted", "true")]
    paths = save_figure(fig, tmp_path / "landmark_frame")
    assert [p.name for p in paths] == ["landmark_frame.png", "landmark_frame.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_landmark_frame_without_truth_has_one_panel_cropped_to_the_face():
    image, detected, fitted = _face()
    fig = F.landmark_frame(image, detected, fitted, dataset_kind="synthetic")
    (ax,) = fig.axes
    x0, x1 = sorted(ax.get_xlim())
    assert 0 < x0 < detected[:, 0].min() and detected[:, 0].max() < x1 < W
    assert len(fig.legends[0].get_texts()) == 2


# --------------------------------------------------------------------------- privacy


@pytest.mark.parametrize("kind", ["candor", "manifest"])
def test_frames_of_real_data_are_refused_without_the_flag(kind):
    image, detected, fitted = _face()
    with pytest.raises(ValueError, match=r"privacy\.frames_in_figures"):
        F.landmark_frame(image, detected, fitted, dataset_kind=kind)
    with pytest.raises(ValueError, match=r"privacy\.frames_in_figures"):
        F.landmark_frame(image, detected, fitted, dataset_kind=kind, frames_in_figures="true")
    fig = F.landmark_frame(image, detected, fitted, dataset_kind=kind, frames_in_figures=True)
    assert isinstance(fig, Figure)
    assert frames_allowed("synthetic", False) and not frames_allowed(kind, False)


def test_stage_refuses_before_opening_the_video(tmp_path):
    """The gate runs first: nothing is read (the paths do not even exist)."""
    with pytest.raises(ValueError, match=r"privacy\.frames_in_figures"):
        run_landmark_frame_figure(
            tmp_path / "f.parquet",
            tmp_path / "l.parquet",
            tmp_path / "model.json",
            tmp_path / "v.mp4",
            tmp_path,
            "run",
            dataset_kind="candor",
        )
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- the stage


def test_median_nme_frame_is_deterministic():
    df = pd.DataFrame(
        {
            "frame": [0, 2, 4, 6, 8],
            "valid": [True, True, False, True, True],
            "nme": [0.03, 0.01, np.nan, 0.02, 0.02],
        }
    )
    assert median_nme_frame(df) == 6  # sorted (0.01, 0.02@6, 0.02@8, 0.03): lower median
    with pytest.raises(ValueError, match="no valid"):
        median_nme_frame(df.assign(valid=False))


def test_read_video_frame_returns_the_indexed_frame(fitted_video):
    for k in (0, 5, 17):
        frame = read_video_frame(fitted_video["video"], k)
        assert frame.shape == (H, W, 3)
        assert abs(float(frame.mean()) - 10 * k) < 4
    with pytest.raises(ValueError, match="ends before"):
        read_video_frame(fitted_video["video"], 10 * N)


def test_stage_draws_the_median_nme_frame(head, fitted_video, tmp_path):
    paths = run_landmark_frame_figure(
        fitted_video["flame"],
        fitted_video["landmarks"],
        head["model_json"],
        fitted_video["video"],
        tmp_path,
        "smoke",
        dataset_kind="synthetic",
        truth_path=fitted_video["truth"],
    )
    assert [p.name for p in paths] == ["landmark_frame.png", "landmark_frame.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)
    flame, _ = read_table(fitted_video["flame"])
    assert median_nme_frame(flame) in set(fitted_video["frames"][flame["valid"]])
    with pytest.raises(ValueError, match="no detected and fitted"):  # an undetected frame
        run_landmark_frame_figure(
            fitted_video["flame"],
            fitted_video["landmarks"],
            head["model_json"],
            fitted_video["video"],
            tmp_path,
            "smoke",
            dataset_kind="synthetic",
            frame=4,
        )
