"""The per-frame FLAME table (``results/flame/{session}/{speaker}.parquet``).

Columns (the contract in docs/pipeline.md, "Tables"): ``frame, time_s, valid``, ``shape_000..`` (n_shape),
``expr_000..`` (n_expr), ``jaw_0..jaw_2``, ``rot_0..rot_2`` (global head rotation,
axis-angle), camera columns ``tx, ty, tz, focal_px`` (pinhole, :mod:`facedyn.flame.camera`;
NaN when the parameters came from a weak-perspective tracker, whose ``cam_s, cam_tx,
cam_ty`` are then added), ``rmse_px`` and ``nme`` (landmark reprojection error; NaN when
imported). Frames that were not fitted keep their row with ``valid = False`` and NaN
parameters: nothing is invented.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

CAMERA_COLUMNS = ["tx", "ty", "tz", "focal_px"]
WEAK_PERSPECTIVE_COLUMNS = ["cam_s", "cam_tx", "cam_ty"]


def shape_columns(n: int) -> list[str]:
    return [f"shape_{k:03d}" for k in range(n)]


def expr_columns(n: int) -> list[str]:
    return [f"expr_{k:03d}" for k in range(n)]


JAW_COLUMNS = ["jaw_0", "jaw_1", "jaw_2"]
ROT_COLUMNS = ["rot_0", "rot_1", "rot_2"]


def flame_table(
    frame: np.ndarray, time_s: np.ndarray, valid: np.ndarray, arrays: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    """Assemble a FLAME table; ``arrays`` holds per-frame blocks for ``shape``, ``expression``,
    ``jaw``, ``rotation`` and optionally ``camera`` (N, 4), ``weak_perspective`` (N, 3),
    ``rmse_px`` and ``nme`` (N,). Rows where ``valid`` is False are set to NaN."""
    n = len(frame)
    valid = np.asarray(valid, dtype=bool)
    cols: dict[str, np.ndarray] = {
        "frame": np.asarray(frame, dtype=np.int64),
        "time_s": np.asarray(time_s, dtype=np.float64),
        "valid": valid,
    }

    def block(name: str, names: list[str]) -> None:
        values = np.asarray(arrays[name], dtype=np.float64).reshape(n, len(names)).copy()
        values[~valid] = np.nan
        cols.update(zip(names, values.T, strict=True))

    block("shape", shape_columns(np.asarray(arrays["shape"]).shape[1]))
    block("expression", expr_columns(np.asarray(arrays["expression"]).shape[1]))
    block("jaw", JAW_COLUMNS)
    block("rotation", ROT_COLUMNS)
    if "camera" in arrays:
        block("camera", CAMERA_COLUMNS)
    else:
        cols.update({c: np.full(n, np.nan) for c in CAMERA_COLUMNS})
    if "weak_perspective" in arrays:
        block("weak_perspective", WEAK_PERSPECTIVE_COLUMNS)
    for name in ("rmse_px", "nme"):
        values = np.asarray(arrays.get(name, np.full(n, np.nan)), dtype=np.float64).copy()
        values[~valid] = np.nan
        cols[name] = values
    return pd.DataFrame(cols)
