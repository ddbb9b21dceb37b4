"""Dense landmark embeddings: a detector's dense points (MediaPipe's face mesh) on the head.

Format read and written: metrical-tracker's ``mediapipe_landmark_embedding.npz`` (the one
published for FLAME, 105 points), an ``.npz`` with

=====================  =========  ==================================================
key                    shape      meaning
=====================  =========  ==================================================
``lmk_face_idx``       (P,)       triangle of the head mesh holding point p
``lmk_b_coords``       (P, 3)     barycentric coordinates of point p in that triangle
``landmark_indices``   (P,)       index of point p among the detector's dense points
=====================  =========  ==================================================

Dense points are *static*: fixed on the surface, like iBUG's inner 51 (MediaPipe's face oval
is drawn on the surface too, not along the silhouette). :func:`with_dense_points` appends
them to an iBUG-68 :class:`~facedyn.flame.landmarks.LandmarkEmbedding` as extra static points,
so the landmark model, its fast path and the fitter's Jacobians give ``68 + P`` points: the
68 first, then the dense ones in embedding order.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facedyn.atomic import atomic_write_bytes
from facedyn.flame.io import FlameModelError
from facedyn.flame.landmarks import LandmarkEmbedding

KEYS = ("lmk_face_idx", "lmk_b_coords", "landmark_indices")


@dataclass(frozen=True)
class DenseEmbedding:
    """Dense points on a head mesh (all arrays numpy).

    Attributes:
        faces: (P,) triangle index of each point.
        bary: (P, 3) barycentric coordinates.
        landmark_indices: (P,) index of each point among the detector's dense points.
    """

    faces: np.ndarray
    bary: np.ndarray
    landmark_indices: np.ndarray

    def __len__(self) -> int:
        return len(self.faces)

    def check(
        self,
        n_faces: int | None,
        n_detector_points: int | None = None,
        where: str = "dense landmark embedding",
    ) -> None:
        """Raise :class:`FlameModelError` naming what is wrong.

        Args:
            n_faces: triangles of the head mesh; None skips the triangle check.
            n_detector_points: dense points the detector reports (478 for MediaPipe); None
                checks only that ``landmark_indices`` are non-negative and distinct.
        """
        p = len(self.faces)
        if p == 0:
            raise FlameModelError(f"{where}: no points")
        if (
            self.faces.shape != (p,)
            or self.bary.shape != (p, 3)
            or self.landmark_indices.shape != (p,)
        ):
            raise FlameModelError(
                f"{where}: lmk_face_idx {self.faces.shape}, lmk_b_coords {self.bary.shape} and "
                f"landmark_indices {self.landmark_indices.shape} must be (P,), (P, 3), (P,)"
            )
        if n_faces is not None and (self.faces.min() < 0 or self.faces.max() >= n_faces):
            raise FlameModelError(
                f"{where}: lmk_face_idx indexes triangles outside "
                f"0..{n_faces - 1}: is it for this head model?"
            )
        if (
            not np.isfinite(self.bary).all()
            or np.abs(self.bary.sum(1) - 1).max() > 1e-4
            or self.bary.min() < -1e-4
        ):
            raise FlameModelError(
                f"{where}: lmk_b_coords must be barycentric (>= 0, rows summing to 1)"
            )
        idx = self.landmark_indices
        top = n_detector_points if n_detector_points is not None else np.iinfo(np.int64).max
        if idx.min() < 0 or idx.max() >= top:
            raise FlameModelError(
                f"{where}: landmark_indices outside 0..{top - 1} (the detector's dense points)"
            )
        if len(np.unique(idx)) != p:
            raise FlameModelError(f"{where}: landmark_indices repeats a detector point")


def load_dense_embedding(path: str | os.PathLike[str]) -> DenseEmbedding:
    """Read an ``.npz`` dense embedding (keys :data:`KEYS`)."""
    path = Path(path)
    if not path.is_file():
        raise FlameModelError(
            f"dense landmark embedding not found: {path}. For FLAME use metrical-tracker's "
            "mediapipe_landmark_embedding.npz; for the synthetic head `synthetic`"
        )
    try:
        with np.load(path, allow_pickle=False) as raw:
            missing = [k for k in KEYS if k not in raw]
            if missing:
                raise FlameModelError(f"{path}: missing keys {missing} (expected {list(KEYS)})")
            return DenseEmbedding(
                faces=raw["lmk_face_idx"].astype(np.int64).reshape(-1),
                bary=raw["lmk_b_coords"].astype(np.float64).reshape(-1, 3),
                landmark_indices=raw["landmark_indices"].astype(np.int64).reshape(-1),
            )
    except FlameModelError:
        raise
    except Exception as exc:
        raise FlameModelError(f"{path}: cannot read dense landmark embedding ({exc})") from exc


def save_dense_embedding(path: str | os.PathLike[str], emb: DenseEmbedding) -> Path:
    """Write ``emb`` as ``.npz`` (keys :data:`KEYS`), atomically."""
    buf = io.BytesIO()
    np.savez(
        buf,
        lmk_face_idx=emb.faces.astype(np.int64),
        lmk_b_coords=emb.bary.astype(np.float64),
        landmark_indices=emb.landmark_indices.astype(np.int64),
    )
    return atomic_write_bytes(path, buf.getvalue())


def with_dense_points(emb: LandmarkEmbedding, dense: DenseEmbedding) -> LandmarkEmbedding:
    """``emb`` with the dense points appended as static points (2D and 3D landmarks alike)."""
    return LandmarkEmbedding(
        static_faces=np.concatenate([emb.static_faces, dense.faces]),
        static_bary=np.concatenate([emb.static_bary, dense.bary]),
        dynamic_faces=emb.dynamic_faces,
        dynamic_bary=emb.dynamic_bary,
        full_faces=np.concatenate([emb.full_faces, dense.faces]),
        full_bary=np.concatenate([emb.full_bary, dense.bary]),
        yaw_sign=emb.yaw_sign,
    )


__all__ = [
    "KEYS",
    "DenseEmbedding",
    "load_dense_embedding",
    "save_dense_embedding",
    "with_dense_points",
]
