"""Import per-frame FLAME parameters from another tracker (``fit.backend: import``).

Users who already ran a per-frame FLAME regressor (DECA, EMOCA, SMIRK, SPECTRE, VGGHeads)
give one ``.npz`` per video; it becomes the same table the fitter writes
(:mod:`facedyn.flame.table`), so every later stage works unchanged.

Arrays in the ``.npz`` (N = number of frames; names are case-sensitive):

==================  ===========  =====================================================
name                shape        meaning
==================  ===========  =====================================================
``expression``      (N, E)       required: FLAME expression coefficients
``jaw``             (N, 3)       jaw axis-angle; or give ``pose`` instead
``pose``            (N, 6)       DECA/EMOCA layout: global (3) + jaw (3)
``rotation``        (N, 3)       global head rotation, axis-angle (else from ``pose``)
``rotation_6d``     (N, 6)       VGGHeads' 6D rotation (first two matrix columns)
``shape``           (N, S)/(S,)  identity coefficients; one vector is repeated
``cam``             (N, 3)       weak perspective (s, tx, ty), DECA/EMOCA/SMIRK
``translation``     (N, 3)       metric translation (VGGHeads); stored as tx, ty, tz
``frame``           (N,)         source frame indices (default 0..N-1)
``valid``           (N,)         bool; frames with False or any NaN are invalid
``eyelid``          (N, 2)       SMIRK eyelids: accepted, not used
==================  ===========  =====================================================

Coefficients beyond the run's ``n_shape`` / ``n_expr`` are dropped; fewer than asked is an
error (a DECA file has 100 shape and 50 expression coefficients: set the config to match).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facedyn.flame.table import flame_table
from facedyn.runtime import file_sha256

log = logging.getLogger(__name__)

KNOWN_ARRAYS = (
    "expression",
    "jaw",
    "pose",
    "rotation",
    "rotation_6d",
    "shape",
    "cam",
    "translation",
    "frame",
    "valid",
    "eyelid",
)


class TrackerImportError(ValueError):
    """An importer file that cannot become a FLAME table (the message says why)."""


@dataclass(frozen=True)
class ImportedParameters:
    table: pd.DataFrame
    metadata: dict[str, Any]


def _rotation_from_6d(r6: np.ndarray) -> np.ndarray:
    """Axis-angle from the 6D representation (Gram-Schmidt of the first two columns)."""
    a1, a2 = r6[:, :3], r6[:, 3:]
    b1 = a1 / np.linalg.norm(a1, axis=1, keepdims=True)
    b2 = a2 - (b1 * a2).sum(1, keepdims=True) * b1
    b2 /= np.linalg.norm(b2, axis=1, keepdims=True)
    b3 = np.cross(b1, b2)
    from scipy.spatial.transform import Rotation  # here: scipy.spatial costs every fit job 0.3 s

    return Rotation.from_matrix(np.stack([b1, b2, b3], axis=-1)).as_rotvec()


def import_npz(
    path: str | os.PathLike[str], n_shape: int, n_expr: int, fps: float, tracker: str = "unknown"
) -> ImportedParameters:
    """Read one tracker ``.npz`` into a FLAME table (see the module docstring for names).

    Raises:
        TrackerImportError: missing or inconsistent arrays, with the names and lengths involved.
    """
    path = Path(path)
    try:
        data = dict(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as exc:
        raise TrackerImportError(f"{path}: not a readable .npz ({exc})") from exc
    unknown = sorted(set(data) - set(KNOWN_ARRAYS))
    if unknown:
        log.warning("%s: ignoring unknown arrays %s", path, unknown)
    if "expression" not in data:
        raise TrackerImportError(
            f"{path}: array 'expression' (N, E) is required; found {sorted(data)}"
        )
    expr = np.asarray(data["expression"], dtype=np.float64)
    if expr.ndim != 2:
        raise TrackerImportError(f"{path}: 'expression' must be (N, E), got {expr.shape}")
    n = len(expr)

    def get(name: str, width: int | None) -> np.ndarray | None:
        if name not in data:
            return None
        arr = np.asarray(data[name], dtype=np.float64)
        if width is not None and (arr.ndim != 2 or arr.shape[1] != width):
            raise TrackerImportError(f"{path}: '{name}' must be (N, {width}), got {arr.shape}")
        if len(arr) != n:
            raise TrackerImportError(
                f"{path}: '{name}' has {len(arr)} rows but 'expression' has {n}: all per-frame "
                "arrays must have one row per frame"
            )
        return arr

    pose = get("pose", 6)
    jaw = get("jaw", 3)
    if jaw is None and pose is not None:
        jaw = pose[:, 3:]
    if jaw is None:
        raise TrackerImportError(f"{path}: give 'jaw' (N, 3) or DECA's 'pose' (N, 6)")
    rotation = get("rotation", 3)
    if rotation is None and "rotation_6d" in data:
        rotation = _rotation_from_6d(get("rotation_6d", 6))
    if rotation is None:
        rotation = pose[:, :3] if pose is not None else np.zeros((n, 3))
    if "shape" in data:
        shape = np.asarray(data["shape"], dtype=np.float64)
        shape = np.repeat(shape[None], n, 0) if shape.ndim == 1 else get("shape", None)
    else:
        shape = np.zeros((n, n_shape))
    for name, arr, want in (("shape", shape, n_shape), ("expression", expr, n_expr)):
        if arr.shape[1] < want:
            raise TrackerImportError(
                f"{path}: '{name}' has {arr.shape[1]} coefficients, the run asks for {want} "
                f"(flame.n_{'shape' if name == 'shape' else 'expr'}); lower the config value"
            )
    frame = get("frame", None)
    frame = np.arange(n) if frame is None else frame.astype(np.int64)
    if len(frame) > 1 and np.any(np.diff(frame) <= 0):
        raise TrackerImportError(f"{path}: 'frame' must be strictly increasing")
    valid = get("valid", None)
    valid = np.ones(n, bool) if valid is None else valid.astype(bool)
    arrays: dict[str, np.ndarray] = {
        "shape": shape[:, :n_shape],
        "expression": expr[:, :n_expr],
        "jaw": jaw,
        "rotation": rotation,
    }
    cam, trans = get("cam", 3), get("translation", 3)
    if cam is not None:
        arrays["weak_perspective"] = cam
    if trans is not None:
        arrays["camera"] = np.concatenate([trans, np.full((n, 1), np.nan)], 1)
    finite = np.all(
        [np.isfinite(a).all(axis=1) for k, a in arrays.items() if k not in ("camera",)], axis=0
    )
    valid &= finite
    table = flame_table(frame, frame / fps, valid, arrays)
    meta = {
        "fitter": "import",
        "tracker": tracker,
        "source": str(path),
        "source_sha256": file_sha256(path),
        "n_shape": n_shape,
        "n_expr": n_expr,
        "frames": n,
        "frames_valid": int(valid.sum()),
        "camera": "weak_perspective"
        if cam is not None
        else ("translation" if trans is not None else "none"),
        "status": "ok" if valid.any() else "no_valid_frames",
    }
    return ImportedParameters(table, meta)
