"""A run's head model: the check of a user's FLAME model and landmark embedding before any
job runs (:func:`check_head_model`), and its validated description, ``results/flame/model.json``
(:func:`describe_flame_model`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from facedyn.atomic import atomic_write_json
from facedyn.face.ibug import inter_ocular
from facedyn.flame.io import FlameModelError, load_flame_arrays
from facedyn.flame.landmarks import load_landmark_embedding
from facedyn.flame.model import load_flame
from facedyn.runtime import file_sha256, provenance

log = logging.getLogger(__name__)


def check_head_model(
    model: str | os.PathLike[str],
    embedding: str | os.PathLike[str],
    *,
    n_shape: int,
    n_expr: int,
    yaw_sign: int = 1,
) -> None:
    """Check a user's head model and landmark embedding before any job runs.

    Reads and validates both files as the pipeline will (keys, shapes, values, triangle
    indices, the run's ``n_shape``/``n_expr`` against the model's components) without building
    the torch model. Raises :class:`~facedyn.flame.io.FlameModelError` whose message starts
    with the configuration key to fix and names the problem.
    """
    try:
        arrays = load_flame_arrays(model)
    except FlameModelError as err:
        raise FlameModelError(
            f"config key `flame.model` ({model}): {err}. Point it to FLAME 2020's "
            "generic_model.pkl or flame2023.pkl (flame.is.tue.mpg.de)"
        ) from None
    for key, value, limit in (
        ("n_shape", n_shape, arrays.max_shape),
        ("n_expr", n_expr, arrays.max_expr),
    ):
        if not 0 <= value <= limit:
            raise FlameModelError(
                f"config key `flame.{key}` is {value}, but {model} has {limit} such "
                f"components: set flame.{key} to at most {limit}"
            )
    try:
        emb = load_landmark_embedding(embedding, yaw_sign=yaw_sign)
        emb.check_faces(len(arrays.faces), where=str(embedding))
    except FlameModelError as err:
        raise FlameModelError(
            f"config key `flame.landmark_embedding` ({embedding}): {err}. Point it to DECA's "
            "landmark_embedding.npy for this FLAME version"
        ) from None


def describe_flame_model(
    model: str | os.PathLike[str],
    embedding: str | os.PathLike[str],
    out: str | os.PathLike[str] | None,
    *,
    n_shape: int,
    n_expr: int,
    yaw_sign: int = 1,
    synthetic: bool = False,
    config: Mapping[str, Any] | None = None,
    dense_embedding: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Load the model with the run's settings (so every error surfaces here, in the first
    job, not in thousands of fitting jobs) and record sizes, checksums and a landmark check.

    Returns the description; writes it as JSON to ``out`` when given.
    """
    dense = None
    if dense_embedding is not None:
        from facedyn.face.mediapipe_backend import N_MESH_POINTS
        from facedyn.flame.dense import load_dense_embedding

        where = f"config key `flame.dense_embedding` ({dense_embedding})"
        try:
            # The detector's side here; load_flame checks the triangles against the head.
            dense = load_dense_embedding(dense_embedding)
            dense.check(None, N_MESH_POINTS)
        except FlameModelError as err:
            raise FlameModelError(f"{where}: {err}") from None
    flame = load_flame(
        model,
        n_shape=n_shape,
        n_expr=n_expr,
        landmark_embedding=embedding,
        dtype=torch.float64,
        yaw_sign=yaw_sign,
        dense_embedding=dense_embedding,
    )
    lmk = flame.landmarks()[0]
    fast = flame.landmark_model()
    iod = float(inter_ocular(lmk))
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
        "dense_embedding": (
            str(Path(dense_embedding).resolve()) if dense_embedding is not None else None
        ),
        "dense_embedding_sha256": (
            file_sha256(dense_embedding) if dense_embedding is not None else None
        ),
        "dense_points": len(dense) if dense is not None else 0,
        "provenance": provenance(
            config, inputs=[model, embedding, *([dense_embedding] if dense_embedding else [])]
        ),
    }
    log.info(
        "head model ok: %d vertices, fast path %d vertices, inter-ocular %.4f m%s",
        info["n_vertices"],
        info["fast_path_vertices"],
        iod,
        " (SYNTHETIC stand-in, not FLAME)" if synthetic else "",
    )
    if out is not None:
        atomic_write_json(out, info)
    return info
