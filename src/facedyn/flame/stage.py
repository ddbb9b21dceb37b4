"""The fit_flame stage: one landmark table (or tracker .npz) in, one FLAME table out.

Like the landmarks stage it never fails on per-video problems: a video without valid
landmark frames gets a table of invalid rows and a ``status`` in its metadata
(``no_valid_frames``), and so does a tracker file that is missing or cannot be imported
(``import_failed``, with the importer's message as ``reason``) and, with a dense embedding
(``flame.dense_embedding``), a landmark table without dense points (``no_dense_landmarks``);
QC excludes them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facedyn.face.descriptor import DESCRIPTOR_FRAMES_KEY, DESCRIPTOR_KEY
from facedyn.face.extract import dense_points, landmarks_array
from facedyn.flame.dense import load_dense_embedding
from facedyn.flame.fit import FitSettings, fit_landmarks
from facedyn.flame.importer import TrackerImportError, import_npz
from facedyn.flame.model import load_flame
from facedyn.flame.table import flame_table
from facedyn.runtime import resolve_device
from facedyn.tables import read_table, write_table

log = logging.getLogger(__name__)


def fit_settings(
    fit: Mapping[str, Any], n_shape: int, n_expr: int, device: str, seed: int = 0
) -> FitSettings:
    """FitSettings from the ``fit`` config section."""
    keys = set(FitSettings.__dataclass_fields__) - {"n_shape", "n_expr", "device", "seed"}
    return FitSettings(
        n_shape=n_shape,
        n_expr=n_expr,
        device=device,
        seed=seed,
        **{k: v for k, v in fit.items() if k in keys},
    )


def run_fit(
    landmarks_path: str | os.PathLike[str],
    model_json: str | os.PathLike[str],
    out: str | os.PathLike[str],
    fit: Mapping[str, Any],
    provenance: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit (or import) FLAME parameters for one video and write its table atomically."""
    start = time.perf_counter()
    model = json.loads(Path(model_json).read_text())
    n_shape, n_expr = int(model["n_shape"]), int(model["n_expr"])
    lmk_df, lmk_meta = read_table(landmarks_path)
    ids = {k: lmk_meta.get(k) for k in ("session_id", "speaker_id")}
    meta: dict[str, Any] = {
        **ids,
        "model_sha256": model["model_sha256"],
        "synthetic_model": model["synthetic"],
        "n_shape": n_shape,
        "n_expr": n_expr,
        "fitter": fit["backend"],
        # the session's appearance (facedyn.face.descriptor), for the appearance baseline
        DESCRIPTOR_KEY: lmk_meta.get(DESCRIPTOR_KEY),
        DESCRIPTOR_FRAMES_KEY: lmk_meta.get(DESCRIPTOR_FRAMES_KEY, 0),
        "provenance": dict(provenance or {}),
    }
    frames = lmk_df["frame"].to_numpy(np.int64)
    times = lmk_df["time_s"].to_numpy(np.float64)

    def write_invalid(status: str, reason: str, **extra: Any) -> dict[str, Any]:
        """Every landmark row, invalid, with the status and reason (QC excludes it)."""
        n = len(frames)
        empty = {
            "shape": np.zeros((n, n_shape)),
            "expression": np.zeros((n, n_expr)),
            "jaw": np.zeros((n, 3)),
            "rotation": np.zeros((n, 3)),
        }
        table = flame_table(frames, times, np.zeros(n, bool), empty)
        meta.update(status=status, reason=reason, frames=n, frames_valid=0, **extra)
        write_table(table, out, meta)
        return meta

    if fit["backend"] == "import":
        source = Path(fit["import"]["dir"]) / str(ids["session_id"]) / f"{ids['speaker_id']}.npz"
        try:
            imported = import_npz(
                source,
                n_shape,
                n_expr,
                float(lmk_meta.get("sampled_fps") or 30.0),
                tracker=fit["import"]["tracker"],
            )
        except TrackerImportError as err:
            log.warning("%s/%s: %s", ids["session_id"], ids["speaker_id"], err)
            return write_invalid(
                "import_failed",
                f"{err}. Fix or re-export the file "
                "(fit.import.dir; docs in facedyn.flame.importer)",
                source=str(source),
            )
        write_table(imported.table, out, {**meta, **imported.metadata})
        return {**meta, **imported.metadata}

    device = resolve_device(fit["device"])
    valid = lmk_df["detected"].to_numpy(bool).copy() if len(lmk_df) else np.zeros(0, bool)
    settings = fit_settings(fit, n_shape, n_expr, device, seed)
    if valid.sum() == 0:
        return write_invalid("no_valid_frames", "no landmark frame to fit", device=device)
    landmarks = landmarks_array(lmk_df)
    dense = None
    if model.get("dense_embedding"):
        dense = load_dense_embedding(model["dense_embedding"])
        points = dense_points(lmk_df, dense.landmark_indices)
        if points is None:
            return write_invalid(
                "no_dense_landmarks",
                "the landmark table has no dense points "
                "(dx/dy columns) for flame.dense_embedding: extract landmarks "
                "with landmarks.backend: mediapipe",
                device=device,
            )
        landmarks = np.concatenate([landmarks, points], axis=1)
        valid &= np.isfinite(landmarks).all(axis=(1, 2))
        if valid.sum() == 0:
            return write_invalid("no_valid_frames", "no landmark frame to fit", device=device)
    flame = load_flame(
        model["model"],
        n_shape=n_shape,
        n_expr=n_expr,
        landmark_embedding=model["landmark_embedding"],
        yaw_sign=model["yaw_sign"],
        dense_embedding=dense,
    )
    fast = flame.to(device).landmark_model()
    res = fit_landmarks(
        landmarks[valid],
        frames[valid],
        times[valid],
        int(lmk_meta["width"]),
        int(lmk_meta["height"]),
        fast,
        settings,
    )

    def track(values: np.ndarray) -> np.ndarray:
        """Fitted rows scattered back into the whole track (flame_table blanks invalid rows)."""
        values = np.asarray(values).reshape(int(valid.sum()), -1)
        out = np.zeros((len(frames), values.shape[1]))
        out[valid] = values
        return out

    camera = np.concatenate([res.translation, np.full((len(res.jaw), 1), res.focal)], 1)
    full = {
        "shape": track(res.shape),
        "expression": track(res.expression),
        "jaw": track(res.jaw),
        "rotation": track(res.rotation),
        "camera": track(camera),
        "rmse_px": track(res.rmse_px)[:, 0],
        "nme": track(res.nme)[:, 0],
    }
    table = flame_table(frames, times, valid, full)
    meta.update(
        status="ok",
        reason="",
        device=device,
        frames=len(frames),
        frames_valid=int(valid.sum()),
        median_nme=float(np.median(res.nme)),
        settings=res.settings,
        final_loss=res.loss_history[-1],
        torch_version=torch.__version__,
        seconds=round(time.perf_counter() - start, 2),
    )
    write_table(table, out, meta)
    log.info(
        "%s/%s: fitted %d frames on %s, median NME %.3f, %.1f s",
        ids["session_id"],
        ids["speaker_id"],
        valid.sum(),
        device,
        meta["median_nme"],
        meta["seconds"],
    )
    return meta
