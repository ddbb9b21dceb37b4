"""A fitted FLAME table projected back into its video: the iBUG-68 landmarks the fitter
placed in each frame, in pixels.

The projection is the fitter's own (:func:`facedyn.flame.fit.project_landmarks`): the same
head model, landmark embedding, pose layout, yaw-dependent contour and pinhole camera, so the
reprojected points reproduce a table's ``rmse_px`` and ``nme`` columns.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from facedyn.flame.fit import project_landmarks
from facedyn.flame.model import load_flame
from facedyn.flame.table import (
    CAMERA_COLUMNS,
    JAW_COLUMNS,
    ROT_COLUMNS,
    expr_columns,
    shape_columns,
)


def fitted_landmarks(
    flame: pd.DataFrame, model_json: str | os.PathLike[str], width: int, height: int
) -> np.ndarray:
    """The fitted FLAME model's iBUG-68 landmarks of every row of a FLAME table, projected
    into the image (pixels), as the fitter placed them when it computed ``rmse_px``/``nme``.

    Same model (``results/flame/model.json``: head, landmark embedding, ``n_shape``,
    ``n_expr``, ``yaw_sign``), pose layout (global rotation and jaw; neck and eyes zero),
    yaw-dependent contour (``kind="2d"``) and pinhole (``tx, ty, tz, focal_px``, principal
    point at the image centre) as :func:`facedyn.flame.fit.fit_landmarks`.

    Args:
        flame: rows of a FLAME table (``facedyn.flame.table``); pass only the rows needed.
        model_json: the run's ``results/flame/model.json``.
        width, height: the video's frame size (landmark table metadata).

    Returns:
        (N, 68, 2) float array; NaN for rows that are not valid.

    Raises:
        ValueError: the table lacks the pinhole camera (imported weak-perspective
            parameters) or has fewer coefficients than the model expects.
    """
    model = json.loads(Path(model_json).read_text())
    n_shape, n_expr = int(model["n_shape"]), int(model["n_expr"])
    missing = [
        c
        for c in [
            *shape_columns(n_shape),
            *expr_columns(n_expr),
            *JAW_COLUMNS,
            *ROT_COLUMNS,
            *CAMERA_COLUMNS,
        ]
        if c not in flame.columns
    ]
    if missing:
        raise ValueError(f"FLAME table lacks columns the model needs: {missing[:5]}...")
    out = np.full((len(flame), 68, 2), np.nan)
    valid = flame["valid"].to_numpy(bool)
    camera = flame.loc[valid, CAMERA_COLUMNS].to_numpy(float)
    if not np.isfinite(camera).all():
        raise ValueError(
            "FLAME table has no pinhole camera (tx, ty, tz, focal_px) for its valid "
            "rows: imported weak-perspective fits cannot be reprojected"
        )
    if not valid.any():
        return out
    rows = flame.loc[valid]
    dtype = torch.float32

    def t(columns: list[str]) -> torch.Tensor:
        return torch.tensor(rows[columns].to_numpy(float, copy=True), dtype=dtype)

    head = load_flame(
        model["model"],
        n_shape=n_shape,
        n_expr=n_expr,
        landmark_embedding=model["landmark_embedding"],
        yaw_sign=int(model.get("yaw_sign", 1)),
    ).landmark_model()
    with torch.no_grad():
        proj = project_landmarks(
            head,
            t(shape_columns(n_shape)),
            t(expr_columns(n_expr)),
            t(JAW_COLUMNS),
            t(ROT_COLUMNS),
            t(["tx", "ty", "tz"]),
            t(["focal_px"])[:, 0],
            (width - 1) / 2,
            (height - 1) / 2,
        )
    out[valid] = proj.numpy()
    return out


__all__ = ["fitted_landmarks"]
