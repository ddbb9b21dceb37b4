"""FLAME head model: file loading (no chumpy), batched LBS, landmark embeddings,
the landmark-only fast path, and a procedural FLAME-format stand-in head.

Public API (contract, see docs/pipeline.md):
    load_flame(path, n_shape=..., n_expr=...) -> FLAME
    FLAME.forward(shape, expression, pose) -> vertices (B, V, 3)
    write_synthetic_flame(directory, n_shape=..., n_expr=..., seed=...)
"""

from facedyn.flame.io import FlameArrays, FlameModelError, load_flame_arrays, save_flame_pickle
from facedyn.flame.landmarks import (
    LandmarkEmbedding,
    load_landmark_embedding,
    save_landmark_embedding,
)
from facedyn.flame.model import FLAME, FLAMELandmarks, load_flame


def write_synthetic_flame(*args, **kwargs):
    from facedyn.flame.synthetic import write_synthetic_flame as _write

    return _write(*args, **kwargs)


__all__ = [
    "FLAME",
    "FLAMELandmarks",
    "FlameArrays",
    "FlameModelError",
    "LandmarkEmbedding",
    "load_flame",
    "load_flame_arrays",
    "load_landmark_embedding",
    "save_flame_pickle",
    "save_landmark_embedding",
    "write_synthetic_flame",
]
