"""The FLAME head model as a torch module, plus the landmark-only fast path.

``FLAME`` evaluates the whole mesh.  ``FLAME.landmark_model()`` returns a
``FLAMELandmarks`` module that evaluates LBS only on the vertices the landmark
triangles touch (plus the joint regressor's support), which is what per-frame
fitting needs: ~5 % of FLAME's 5023 vertices, numerically the same landmarks.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from facedyn.flame.dense import DenseEmbedding
from torch import nn

from facedyn.flame.io import EXPR_OFFSET, FlameArrays, FlameModelError, load_flame_arrays
from facedyn.flame.landmarks import (
    N_CONTOUR,
    LandmarkEmbedding,
    barycentric_points,
    load_landmark_embedding,
    yaw_bins,
    yaw_degrees,
)
from facedyn.flame.lbs import batch_rodrigues, lbs

POSE_DIM = 15
JOINT_NAMES = ("global", "neck", "jaw", "eye_l", "eye_r")


def _batch_params(
    shape: torch.Tensor | None,
    expression: torch.Tensor | None,
    pose: torch.Tensor | None,
    n_shape: int,
    n_expr: int,
    like: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate inputs, fill missing ones with zeros, return (betas, pose)."""
    given = [t for t in (shape, expression, pose) if t is not None]
    batch = given[0].shape[0] if given else 1
    opts = {"dtype": like.dtype, "device": like.device}

    def check(t: torch.Tensor | None, width: int, name: str) -> torch.Tensor:
        if t is None:
            return torch.zeros(batch, width, **opts)
        if t.dim() != 2 or t.shape != (batch, width):
            raise ValueError(f"{name} must have shape ({batch}, {width}), got {tuple(t.shape)}")
        return t.to(**opts)

    betas = torch.cat([check(shape, n_shape, "shape"), check(expression, n_expr, "expression")], 1)
    return betas, check(pose, POSE_DIM, "pose")


class _LandmarkSelector(nn.Module):
    """Turns (posed) vertices into 2D-convention or 3D iBUG-68 landmarks."""

    def __init__(self, faces: torch.Tensor, emb: LandmarkEmbedding, dtype: torch.dtype) -> None:
        super().__init__()
        self.yaw_sign = emb.yaw_sign
        self.register_buffer("faces", faces, persistent=False)
        for name in ("static_faces", "dynamic_faces", "full_faces"):
            self.register_buffer(
                name, torch.from_numpy(getattr(emb, name)).long(), persistent=False
            )
        for name in ("static_bary", "dynamic_bary", "full_bary"):
            self.register_buffer(
                name, torch.from_numpy(getattr(emb, name)).to(dtype), persistent=False
            )

    def forward(self, vertices: torch.Tensor, pose: torch.Tensor, kind: str = "2d") -> torch.Tensor:
        if kind == "3d":
            return barycentric_points(vertices, self.faces, self.full_faces, self.full_bary)
        if kind != "2d":
            raise ValueError(f"kind must be '2d' or '3d', got {kind!r}")
        rot = batch_rodrigues(pose[:, :6].reshape(-1, 3)).view(-1, 2, 3, 3)
        head = rot[:, 0] @ rot[:, 1]  # world rotation of the head: global after neck
        bins = yaw_bins(yaw_degrees(head), self.yaw_sign)
        contour = barycentric_points(
            vertices, self.faces, self.dynamic_faces[bins], self.dynamic_bary[bins]
        )
        inner = barycentric_points(vertices, self.faces, self.static_faces, self.static_bary)
        return torch.cat([contour, inner], dim=1)


class _Skinned(nn.Module):
    """The LBS call shared by the full model and the fast path (same buffer names)."""

    n_shape: int
    n_expr: int
    parents: list[int]

    def _skin(
        self, shape: torch.Tensor | None, expression: torch.Tensor | None, pose: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Vertices, posed joints and the (zero-filled) full pose."""
        betas, full_pose = _batch_params(
            shape, expression, pose, self.n_shape, self.n_expr, self.v_template
        )
        verts, joints = lbs(
            betas,
            full_pose,
            self.v_template,
            self.shapedirs,
            self.posedirs,
            self.j_regressor,
            self.parents,
            self.weights,
        )
        return verts, joints, full_pose


class FLAME(_Skinned):
    """FLAME: ``forward(shape, expression, pose) -> vertices (B, V, 3)``.

    ``pose`` is (B, 15) axis-angle for [global, neck, jaw, eye_l, eye_r]. Translation
    and camera are applied by callers.  Buffers follow ``.to(device/dtype)``.

    Attributes:
        n_shape, n_expr: number of identity / expression coefficients used.
        sha256: digest of the model file ("" when built in memory).
    """

    def __init__(
        self,
        arrays: FlameArrays,
        n_shape: int = 100,
        n_expr: int = 50,
        embedding: LandmarkEmbedding | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if not 0 <= n_shape <= arrays.max_shape:
            raise FlameModelError(f"n_shape={n_shape} outside 0..{arrays.max_shape} for this model")
        if not 0 <= n_expr <= arrays.max_expr:
            raise FlameModelError(f"n_expr={n_expr} outside 0..{arrays.max_expr} for this model")
        self.n_shape, self.n_expr, self.sha256 = n_shape, n_expr, arrays.sha256
        self.parents = [int(p) for p in arrays.parents]
        dirs = np.concatenate(
            [
                arrays.shapedirs[..., :n_shape],
                arrays.shapedirs[..., EXPR_OFFSET : EXPR_OFFSET + n_expr],
            ],
            axis=2,
        )
        n_v = arrays.n_vertices

        def buf(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(x)).to(dtype)

        self.register_buffer("v_template", buf(arrays.v_template))
        self.register_buffer("shapedirs", buf(dirs))
        self.register_buffer("posedirs", buf(arrays.posedirs.reshape(n_v * 3, -1).T))
        self.register_buffer("j_regressor", buf(arrays.j_regressor))
        self.register_buffer("weights", buf(arrays.weights))
        self.register_buffer("faces", torch.from_numpy(arrays.faces).long())
        self.embedding = embedding
        self.selector: _LandmarkSelector | None = None
        if embedding is not None:
            embedding.check_faces(len(arrays.faces))
            self.selector = _LandmarkSelector(self.faces.clone(), embedding, dtype)

    def lbs(
        self,
        shape: torch.Tensor | None = None,
        expression: torch.Tensor | None = None,
        pose: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Vertices (B, V, 3) and posed joints (B, 5, 3)."""
        verts, joints, _ = self._skin(shape, expression, pose)
        return verts, joints

    def forward(
        self,
        shape: torch.Tensor | None = None,
        expression: torch.Tensor | None = None,
        pose: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.lbs(shape, expression, pose)[0]

    def landmarks(
        self,
        shape: torch.Tensor | None = None,
        expression: torch.Tensor | None = None,
        pose: torch.Tensor | None = None,
        kind: str = "2d",
    ) -> torch.Tensor:
        """iBUG-68 landmarks (B, 68, 3) from the full mesh: ``2d`` slides the 17 contour
        points with head yaw, ``3d`` uses the fixed full embedding."""
        selector = self._require_selector()
        verts, _, full_pose = self._skin(shape, expression, pose)
        return selector(verts, full_pose, kind)

    def _require_selector(self) -> _LandmarkSelector:
        if self.selector is None:
            raise FlameModelError("this FLAME has no landmark embedding; pass landmark_embedding=")
        return self.selector

    def landmark_model(self) -> FLAMELandmarks:
        """The landmark-only fast path (same device and dtype as this module)."""
        self._require_selector()
        return FLAMELandmarks(self)


class FLAMELandmarks(_Skinned):
    """LBS restricted to the vertices that landmarks and joints depend on.

    Numerically equal to ``FLAME.landmarks`` (same operations on a row subset), at a
    fraction of the cost: use it wherever only landmarks are needed (fitting).
    """

    def __init__(self, flame: FLAME) -> None:
        super().__init__()
        emb = flame.embedding
        assert emb is not None and flame.selector is not None
        faces = flame.faces.cpu().numpy()
        touched = np.concatenate(
            [
                faces[emb.static_faces].ravel(),
                faces[emb.dynamic_faces].ravel(),
                faces[emb.full_faces].ravel(),
                np.flatnonzero(np.abs(flame.j_regressor.cpu().numpy()).sum(0)),
            ]
        )
        subset = np.unique(touched)
        local = np.full(len(flame.v_template), -1, dtype=np.int64)
        local[subset] = np.arange(len(subset))
        idx = torch.from_numpy(subset).to(flame.faces.device)
        n_shape, n_expr, n_v = flame.n_shape, flame.n_expr, len(flame.v_template)
        self.n_shape, self.n_expr, self.parents = n_shape, n_expr, flame.parents
        self.n_vertices = len(subset)
        self.register_buffer("vertex_ids", idx)
        self.register_buffer("v_template", flame.v_template[idx].clone())
        self.register_buffer("shapedirs", flame.shapedirs[idx].clone())
        posedirs = flame.posedirs.view(-1, n_v, 3)[:, idx].reshape(flame.posedirs.shape[0], -1)
        self.register_buffer("posedirs", posedirs.clone())
        self.register_buffer("j_regressor", flame.j_regressor[:, idx].clone())
        self.register_buffer("weights", flame.weights[idx].clone())
        local_faces = torch.from_numpy(local[faces]).to(flame.faces.device)
        self.selector = _LandmarkSelector(local_faces, emb, flame.v_template.dtype)

    def forward(
        self,
        shape: torch.Tensor | None = None,
        expression: torch.Tensor | None = None,
        pose: torch.Tensor | None = None,
        kind: str = "2d",
    ) -> torch.Tensor:
        """iBUG-68 landmarks (B, 68, 3); see ``FLAME.landmarks``."""
        verts, _, full_pose = self._skin(shape, expression, pose)
        return self.selector(verts, full_pose, kind)


def load_flame(
    path: str | os.PathLike[str],
    n_shape: int = 100,
    n_expr: int = 50,
    landmark_embedding: str | os.PathLike[str] | LandmarkEmbedding | None = None,
    dtype: torch.dtype = torch.float32,
    yaw_sign: int = 1,
    dense_embedding: str | os.PathLike[str] | DenseEmbedding | None = None,
) -> FLAME:
    """Load a FLAME 2020/2023 pkl (or the synthetic head) without chumpy.

    Args:
        path: the model pkl.
        n_shape: identity coefficients to use (<= 300).
        n_expr: expression coefficients to use (<= 100).
        landmark_embedding: DECA-format ``landmark_embedding.npy`` (path or loaded), needed
            for ``landmarks`` and the fast path.
        dtype: computation dtype of the buffers.
        yaw_sign: contour-bin yaw convention, +1 = DECA (see ``facedyn.flame.landmarks``).
        dense_embedding: a dense embedding (``facedyn.flame.dense``, path or loaded) whose
            points follow the 68 in every landmark output.

    Raises:
        FlameModelError: missing file, missing key, wrong shape, or n_shape/n_expr too large.
    """
    arrays = load_flame_arrays(path)
    emb = landmark_embedding
    if emb is not None and not isinstance(emb, LandmarkEmbedding):
        emb = load_landmark_embedding(emb, yaw_sign=yaw_sign)
    if dense_embedding is not None:
        from facedyn.flame.dense import DenseEmbedding, load_dense_embedding, with_dense_points

        if emb is None:
            raise ValueError(
                "a dense embedding extends the 68-point landmark embedding: "
                "give landmark_embedding too"
            )
        if isinstance(dense_embedding, DenseEmbedding):
            dense, where = dense_embedding, "dense landmark embedding"
        else:
            dense = load_dense_embedding(dense_embedding)
            where = f"dense landmark embedding {dense_embedding}"
        dense.check(len(arrays.faces), where=where)
        emb = with_dense_points(emb, dense)
    return FLAME(arrays, n_shape=n_shape, n_expr=n_expr, embedding=emb, dtype=dtype)


__all__ = ["FLAME", "JOINT_NAMES", "N_CONTOUR", "POSE_DIM", "FLAMELandmarks", "load_flame"]
