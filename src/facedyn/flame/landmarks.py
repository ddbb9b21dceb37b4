"""FLAME landmark embeddings: barycentric points on mesh triangles -> iBUG-68 landmarks.

Format read and written: DECA's ``landmark_embedding.npy`` (also shipped by SMIRK,
SPECTRE, TEASER), a 0-d object array holding a dict whose dynamic entries are torch
tensors (so torch must be importable to open it):

=========================  =================
key                        shape
=========================  =================
static_lmk_faces_idx       (51,)
static_lmk_bary_coords     (51, 3)
dynamic_lmk_faces_idx      torch (79, 17)
dynamic_lmk_bary_coords    torch (79, 17, 3)
full_lmk_faces_idx         (1, 68)
full_lmk_bary_coords       (1, 68, 3)
=========================  =================

2D (image) landmarks in iBUG-68 order are the 17 yaw-dependent contour points followed by
the 51 static inner points; 3D landmarks are the ``full`` 68 (no contour sliding).

Yaw convention (camera looks down -z, +y up, +x to the image right): the head's world
rotation is ``R = R_global @ R_neck``; ``yaw = atan2(-R[2,0], hypot(R[0,0], R[1,0]))`` in
degrees.  Positive yaw turns the nose towards +x.  With ``yaw_sign=+1`` (DECA's choice,
the one matching DECA's embedding file and this camera) bins 0..39 hold yaw 0..39 degrees
and bins 40..78 hold yaw -1..-39 degrees.  ``yaw_sign=-1`` reproduces smplx /
FLAME_PyTorch.  ``tests/test_flame_landmarks.py`` turns a head and checks that the
contour lands on the silhouette.
"""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facedyn.atomic import atomic_write_bytes
from facedyn.flame.io import FlameModelError

N_DYNAMIC_BINS = 79
N_CONTOUR = 17
N_STATIC = 51
N_LANDMARKS = 68
MAX_YAW_DEG = 39


@dataclass(frozen=True)
class LandmarkEmbedding:
    """Barycentric landmark embedding on a FLAME mesh (all arrays numpy).

    Attributes:
        static_faces: (51,) triangle index of iBUG points 17..67.
        static_bary: (51, 3) barycentric coordinates.
        dynamic_faces: (79, 17) triangle index of contour points 0..16 per yaw bin.
        dynamic_bary: (79, 17, 3).
        full_faces: (68,) triangle index of the 3D landmarks.
        full_bary: (68, 3).
        yaw_sign: +1 (DECA) or -1 (smplx); see the module docstring.
    """

    static_faces: np.ndarray
    static_bary: np.ndarray
    dynamic_faces: np.ndarray
    dynamic_bary: np.ndarray
    full_faces: np.ndarray
    full_bary: np.ndarray
    yaw_sign: int = 1

    def check_faces(self, n_faces: int, where: str = "landmark embedding") -> None:
        """Raise if any triangle index is outside the mesh's ``n_faces`` triangles."""
        for name in ("static_faces", "dynamic_faces", "full_faces"):
            idx = getattr(self, name)
            if idx.size and (idx.min() < 0 or idx.max() >= n_faces):
                raise FlameModelError(
                    f"{where}: {name} indexes triangles outside 0..{n_faces - 1} "
                    f"(range {idx.min()}..{idx.max()}); the embedding belongs to another mesh"
                )


_EXPECTED = {
    "static_lmk_faces_idx": (N_STATIC,),
    "static_lmk_bary_coords": (N_STATIC, 3),
    "dynamic_lmk_faces_idx": (N_DYNAMIC_BINS, N_CONTOUR),
    "dynamic_lmk_bary_coords": (N_DYNAMIC_BINS, N_CONTOUR, 3),
    "full_lmk_faces_idx": (N_LANDMARKS,),
    "full_lmk_bary_coords": (N_LANDMARKS, 3),
}


def _as_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def embedding_from_dict(
    raw: dict[str, Any], where: str = "landmark embedding", yaw_sign: int = 1
) -> LandmarkEmbedding:
    """Validate a DECA-format dict and build a :class:`LandmarkEmbedding`."""
    missing = [k for k in _EXPECTED if k not in raw]
    if missing:
        raise FlameModelError(
            f"{where}: missing key(s) {missing}; expected DECA's landmark_embedding.npy "
            f"with keys {list(_EXPECTED)}"
        )
    out: dict[str, np.ndarray] = {}
    for key, shape in _EXPECTED.items():
        value = _as_numpy(raw[key])
        if key.startswith("full") and value.ndim == len(shape) + 1 and value.shape[0] == 1:
            value = value[0]  # DECA stores the full embedding with a leading batch axis
        if value.shape != shape:
            raise FlameModelError(f"{where}: '{key}' must have shape {shape}, got {value.shape}")
        if key.endswith("bary_coords"):
            value = value.astype(np.float64)
            if not np.isfinite(value).all() or np.abs(value.sum(-1) - 1.0).max() > 1e-3:
                raise FlameModelError(f"{where}: '{key}' rows must be barycentric (sum to 1)")
        else:
            value = value.astype(np.int64)
        out[key] = value
    if yaw_sign not in (1, -1):
        raise ValueError("yaw_sign must be +1 or -1")
    return LandmarkEmbedding(
        static_faces=out["static_lmk_faces_idx"],
        static_bary=out["static_lmk_bary_coords"],
        dynamic_faces=out["dynamic_lmk_faces_idx"],
        dynamic_bary=out["dynamic_lmk_bary_coords"],
        full_faces=out["full_lmk_faces_idx"],
        full_bary=out["full_lmk_bary_coords"],
        yaw_sign=yaw_sign,
    )


def load_landmark_embedding(path: str | os.PathLike[str], yaw_sign: int = 1) -> LandmarkEmbedding:
    """Read DECA's ``landmark_embedding.npy`` (pickled dict with torch tensors)."""
    path = Path(path)
    if not path.is_file():
        raise FlameModelError(
            f"landmark embedding not found: {path}. Use DECA's landmark_embedding.npy "
            "(also shipped by SMIRK/SPECTRE) and set `flame.landmark_embedding` to it."
        )
    try:
        raw = np.load(path, allow_pickle=True, encoding="latin1")
        raw = raw.item() if raw.dtype == object and raw.shape == () else raw
    except Exception as exc:
        raise FlameModelError(f"{path}: cannot read landmark embedding ({exc})") from exc
    if not isinstance(raw, dict):
        raise FlameModelError(f"{path}: expected a pickled dict, got {type(raw).__name__}")
    return embedding_from_dict(raw, where=str(path), yaw_sign=yaw_sign)


class _TensorAsArrayPickler(pickle.Pickler):
    """Pickles torch tensors as ``torch.from_numpy(array)``.

    torch's own tensor pickling embeds a memory address as the storage key, so the bytes
    would differ from run to run; rebuilding from a numpy array loads as the same tensor
    and keeps files byte-identical.
    """

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return torch.from_numpy, (obj.detach().cpu().numpy(),)
        return NotImplemented


def save_landmark_embedding(path: str | os.PathLike[str], emb: LandmarkEmbedding) -> Path:
    """Write ``emb`` in DECA's format (dynamic entries as torch tensors, full with batch
    axis), byte-deterministic."""
    raw = {
        "static_lmk_faces_idx": emb.static_faces.astype(np.int64),
        "static_lmk_bary_coords": emb.static_bary.astype(np.float64),
        "dynamic_lmk_faces_idx": torch.from_numpy(emb.dynamic_faces.astype(np.int64)),
        "dynamic_lmk_bary_coords": torch.from_numpy(emb.dynamic_bary.astype(np.float32)),
        "full_lmk_faces_idx": emb.full_faces.astype(np.int64)[None],
        "full_lmk_bary_coords": emb.full_bary.astype(np.float64)[None],
    }
    buf = io.BytesIO()
    arr = np.array(raw, dtype=object)
    # np.save's own header, then the object array pickled by our deterministic pickler.
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(arr))
    _TensorAsArrayPickler(buf, protocol=4).dump(arr)
    return atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------- evaluation


def yaw_degrees(head_rotation: torch.Tensor) -> torch.Tensor:
    """Yaw (degrees) of (B, 3, 3) world head rotations, per the module's convention."""
    r = head_rotation
    return torch.rad2deg(torch.atan2(-r[:, 2, 0], torch.sqrt(r[:, 0, 0] ** 2 + r[:, 1, 0] ** 2)))


def yaw_bins(yaw_deg: torch.Tensor, yaw_sign: int = 1) -> torch.Tensor:
    """Map yaw in degrees to one of the 79 dynamic-contour bins (see module docstring)."""
    a = torch.round(torch.clamp(yaw_sign * yaw_deg, max=MAX_YAW_DEG)).to(torch.long)
    neg = torch.clamp(MAX_YAW_DEG - a, max=N_DYNAMIC_BINS - 1)
    return torch.where(a < 0, neg, a)


def barycentric_points(
    vertices: torch.Tensor, faces: torch.Tensor, face_idx: torch.Tensor, bary: torch.Tensor
) -> torch.Tensor:
    """Points ``sum_i b_i * v[f[face_idx][i]]``.

    Args:
        vertices: (B, V, 3).
        faces: (F, 3) long.
        face_idx: (L,) or (B, L) long triangle indices.
        bary: (L, 3) or (B, L, 3) barycentric coordinates.

    Returns:
        (B, L, 3) points.
    """
    b = vertices.shape[0]
    if face_idx.dim() == 1:
        face_idx = face_idx.expand(b, -1)
    if bary.dim() == 2:
        bary = bary.expand(b, -1, -1)
    tri = faces[face_idx]  # (B, L, 3) vertex indices
    batch = torch.arange(b, device=vertices.device)[:, None, None]
    corners = vertices[batch, tri]  # (B, L, 3 corners, 3 xyz)
    return (bary.to(vertices.dtype)[..., None] * corners).sum(dim=2)
