"""The landmark-frame figure: detected and fitted landmarks drawn on one video frame, the
privacy gate that keeps real participants' frames out of figures by default, and the
reprojection of a fitted FLAME table (it must reproduce the fitter's own NME)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from facedyn.face.video import read_video_frame
from facedyn.flame import load_flame, write_synthetic_flame
from facedyn.flame.camera import focal_from_fov, project
from facedyn.plots import figures as F
from facedyn.plots.stage import (
    fitted_landmarks,
    median_nme_frame,
    run_landmark_frame_figure,
)
from facedyn.plots.style import save_figure
from facedyn.privacy import frames_allowed
from facedyn.tables import read_table, write_table

W, H = 320, 240
N = 12  # sampled frames of the tiny video
FIT = {
    "backend": "optimize",
    "device": "cpu",
    "iterations": 20,
    "rigid_iterations": 10,
    "import": {"dir": None, "tracker": "unknown"},
}


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A tiny synthetic head and its model.json (as rule flame_model writes it)."""
    from facedyn.flame.summary import describe_flame_model

    root = tmp_path_factory.mktemp("head")
    files = write_synthetic_flame(root, n_shape=10, n_expr=10)
    describe_flame_model(
        files["model"],
        files["landmark_embedding"],
        root / "model.json",
        n_shape=10,
        n_expr=10,
        synthetic=True,
    )
    flame = load_flame(
        files["model"], n_shape=10, n_expr=10, landmark_embedding=files["landmark_embedding"]
    )
    return {"model_json": root / "model.json", "fast": flame.landmark_model()}


def _true_landmarks(fast, n: int, seed: int = 0) -> np.ndarray:
    """(n, 68, 2) projected landmarks of a moving, talking head (the cohort's camera)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 15.0
    shape = np.repeat(rng.normal(0, 0.8, (1, 10)), n, 0)
    expr = 0.8 * np.sin(2 * np.pi * 0.4 * t[:, None] + rng.uniform(0, 6, (1, 10)))
    pose = np.zeros((n, 15))
    pose[:, 1] = 0.2 * np.sin(2 * np.pi * 0.3 * t)  # yaw
    pose[:, 6] = 0.1 * (1 + np.sin(2 * np.pi * 0.7 * t))  # jaw opening
    trans = np.tile([0.0, -0.03, -0.55], (n, 1))
    f = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        lmk3 = fast(f(shape), f(expr), f(pose), kind="2d")
        return project(lmk3, f(trans), focal_from_fov(W, 60.0), (W - 1) / 2, (H - 1) / 2).numpy()


@pytest.fixture(scope="module")
def fitted_video(tmp_path_factory, head):
    """A tiny 'video' end to end: true landmarks, noisy detections (every third frame
    missed), the fit_flame stage's table, the truth table and an mp4 whose frame k is
    filled with grey level 10 k (so the decoded frame's index can be read back)."""
    import cv2

    from facedyn.face.extract import COLUMNS
    from facedyn.flame.stage import run_fit

    root = tmp_path_factory.mktemp("video")
    frames = np.arange(N) * 2  # 30 fps source sampled at 15 fps
    truth = _true_landmarks(head["fast"], N)
    detected = truth + np.random.default_rng(1).normal(0, 1.5, truth.shape)
    cols = {
        "frame": frames,
        "time_s": frames / 30.0,
        "detected": np.arange(N) % 3 != 2,
        "tracked": False,
        "score": 1.0,
        "x0": 0.0,
        "y0": 0.0,
        "x1": 1.0,
        "y1": 1.0,
    }
    cols.update({f"lx{k:02d}": detected[:, k, 0] for k in range(68)})
    cols.update({f"ly{k:02d}": detected[:, k, 1] for k in range(68)})
    lmk = pd.DataFrame(cols)[COLUMNS]
    lmk.loc[~lmk["detected"], COLUMNS[9:]] = np.nan
    ids = {"session_id": "s1", "speaker_id": "a1"}
    write_table(
        lmk,
        root / "landmarks.parquet",
        {**ids, "width": W, "height": H, "source_fps": 30.0, "sampled_fps": 15.0},
    )
    run_fit(root / "landmarks.parquet", head["model_json"], root / "flame.parquet", FIT)
    true_cols = {"frame": frames}
    true_cols.update({f"lx{k:02d}": truth[:, k, 0] for k in range(68)})
    true_cols.update({f"ly{k:02d}": truth[:, k, 1] for k in range(68)})
    write_table(pd.DataFrame(true_cols), root / "truth.parquet", ids)
    video = root / "video.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30, (W, H))
    for k in range(2 * N):
        writer.write(np.full((H, W, 3), 10 * k, dtype=np.uint8))
    writer.release()
    return {
        "root": root,
        "landmarks": root / "landmarks.parquet",
        "flame": root / "flame.parquet",
        "truth": root / "truth.parquet",
        "video": video,
        "detected": detected,
        "true": truth,
        "frames": frames,
    }


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
    nme = 100 * F.landmark_nme(fitted, detected)
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


def test_landmark_nme_is_mean_error_over_interocular_distance():
    _, detected, _ = _face()
    assert F.landmark_nme(detected, detected) == 0.0
    assert F.landmark_nme(detected + np.array([3.0, 4.0]), detected) == pytest.approx(5.0 / 50.0)


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


# --------------------------------------------------------------------------- reprojection


def test_reprojected_fit_reproduces_the_fitters_nme(head, fitted_video):
    flame, _ = read_table(fitted_video["flame"])
    lmk, _ = read_table(fitted_video["landmarks"])
    proj = fitted_landmarks(flame, head["model_json"], W, H)
    valid = flame["valid"].to_numpy(bool)
    assert valid.sum() == 8 and np.isnan(proj[~valid]).all()
    recomputed = np.array(
        [F.landmark_nme(proj[i], fitted_video["detected"][i]) for i in np.flatnonzero(valid)]
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
