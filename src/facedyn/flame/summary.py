"""A validated description of the head model used by a run (``results/flame/model.json``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from facedyn.atomic import atomic_write_json
from facedyn.flame.model import load_flame
from facedyn.runtime import file_sha256, provenance

log = logging.getLogger(__name__)


def describe_flame_model(model: str | os.PathLike[str], embedding: str | os.PathLike[str],
                         out: str | os.PathLike[str] | None, *, n_shape: int, n_expr: int,
                         yaw_sign: int = 1, synthetic: bool = False,
                         config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Load the model with the run's settings (so every error surfaces here, in the first
    job, not in thousands of fitting jobs) and record sizes, checksums and a landmark check.

    Returns the description; writes it as JSON to ``out`` when given.
    """
    flame = load_flame(model, n_shape=n_shape, n_expr=n_expr, landmark_embedding=embedding,
                       dtype=torch.float64, yaw_sign=yaw_sign)
    lmk = flame.landmarks()[0]
    fast = flame.landmark_model()
    iod = float((lmk[36] - lmk[45]).norm())
    if not iod > 0:
        raise ValueError(f"{model}: outer eye corners coincide; wrong landmark embedding?")
    info = {
        "model": str(Path(model).resolve()),
        "landmark_embedding": str(Path(embedding).resolve()),
        "synthetic": bool(synthetic),
        "model_sha256": flame.sha256,
        "landmark_embedding_sha256": file_sha256(embedding),
        "n_vertices": len(flame.v_template),
        "n_faces": len(flame.faces),
        "n_shape": n_shape,
        "n_expr": n_expr,
        "yaw_sign": yaw_sign,
        "fast_path_vertices": fast.n_vertices,
        "neutral_interocular_m": iod,
        "provenance": provenance(config),
    }
    log.info("head model ok: %d vertices, fast path %d vertices, inter-ocular %.4f m%s",
             info["n_vertices"], info["fast_path_vertices"], iod,
             " (SYNTHETIC stand-in, not FLAME)" if synthetic else "")
    if out is not None:
        atomic_write_json(out, info)
    return info
