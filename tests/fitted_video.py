"""Builders for a tiny fitted video: a synthetic head with its model.json, and one 'video'
with true landmarks, noisy detections, the fit_flame stage's table, the truth table and an
mp4 whose frame k is filled with grey level 10 k (so a decoded frame's index can be read
back)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from facedyn.flame import load_flame, write_synthetic_flame
from facedyn.flame.camera import focal_from_fov, project
from facedyn.tables import write_table

W, H = 320, 240
N = 12  # sampled frames of the tiny video
FIT = {
    "backend": "optimize",
    "device": "cpu",
    "iterations": 20,
    "rigid_iterations": 10,
    "import": {"dir": None, "tracker": "unknown"},
}


def make_head(root: Path) -> dict[str, Any]:
    """A tiny synthetic head in ``root`` and its model.json (as rule flame_model writes it):
    ``model_json`` and ``fast`` (its landmark model)."""
    from facedyn.flame.head_model import describe_flame_model

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


def true_landmarks(fast: Any, n: int, seed: int = 0) -> np.ndarray:
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


def make_fitted_video(root: Path, head: dict[str, Any]) -> dict[str, Any]:
    """The tiny video end to end in ``root`` (every third frame's detection missed): the
    paths of its tables and video, its detected and true landmarks and sampled frames."""
    import cv2

    from facedyn.face.extract import COLUMNS
    from facedyn.flame.stage import run_fit

    frames = np.arange(N) * 2  # 30 fps source sampled at 15 fps
    truth = true_landmarks(head["fast"], N)
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
