"""Per-frame Jacobians of the fitter's image landmarks, from the structure of LBS.

The fitter's landmarks (:func:`facedyn.flame.fit.project_landmarks`) are, for fixed joint
rotations, *affine* in the identity and expression coefficients ``beta``: blendshapes are
linear, the joint regressor is linear, and every rigid transform of the kinematic chain is
affine in the rest-pose joints. So, per frame,

    d lmk3d / d beta = sum_k A_k M_k + sum_k c_k (dB_k / dJ) (J_reg S)

with ``A_k, B_k`` the rotation and translation of joint ``k``'s skinning transform,
``M_k = sum_corners bary * w_k * S`` the landmark's skinning-weighted blendshapes and
``c_k`` its skinning weights. ``M_k`` and ``c_k`` are precomputed once per landmark (per
yaw bin for the jaw-line contour), so the Jacobian costs a few batched contractions instead
of one forward-mode pass per coefficient (1.0 s for 450 frames at 100 shape / 50
expression on one CPU thread, where a vmapped ``torch.func.jacfwd`` took 15 s). The six
rotation parameters (global, jaw) go through forward-mode autodiff (``torch.func.jvp``),
translation through the pinhole's own derivative. No library computes structured LBS Jacobians; this is written here for that
reason and tested against autodiff (``tests/test_solve.py``).
"""

from __future__ import annotations

import torch
from torch.func import jvp

from facedyn.flame.camera import project
from facedyn.flame.landmarks import yaw_bins, yaw_degrees
from facedyn.flame.lbs import batch_rodrigues, rigid_transforms
from facedyn.flame.model import FLAMELandmarks


def full_pose(rotation: torch.Tensor, jaw: torch.Tensor) -> torch.Tensor:
    """FLAME's (B, 15) pose with global rotation and jaw; neck and eyes at zero."""
    zeros = torch.zeros(len(rotation), 3, dtype=rotation.dtype, device=rotation.device)
    return torch.cat([rotation, zeros, jaw, zeros, zeros], 1)


def project_landmarks(
    model: FLAMELandmarks,
    shape: torch.Tensor,
    expression: torch.Tensor,
    jaw: torch.Tensor,
    rotation: torch.Tensor,
    translation: torch.Tensor,
    focal: float | torch.Tensor,
    cx: float,
    cy: float,
) -> torch.Tensor:
    """The fitter's image landmarks (B, 68, 2) for per-frame parameters: global rotation and
    jaw posed (neck and eyes at zero), yaw-dependent contour, pinhole camera. The one
    definition shared by the objective and by anything that redraws a fitted table."""
    pose = full_pose(rotation, jaw)
    return project(model(shape, expression, pose, kind="2d"), translation, focal, cx, cy)


class LandmarkJacobian:
    """Jacobians of :func:`project_landmarks` for one landmark model (buffers precomputed).

    ``__call__`` returns the projected landmarks (B, 68, 2), their derivative with respect
    to the concatenated shape and expression coefficients (B, 68, 2, n_shape + n_expr) and
    with respect to ``[jaw, rotation, translation]`` (B, 68, 2, 9).
    """

    def __init__(self, model: FLAMELandmarks) -> None:
        sel = model.selector
        self.model = model
        s = model.shapedirs  # (V, 3, L)
        w = model.weights  # (V, J)
        self.n_joints = w.shape[1]
        # Landmark-level skinning-weighted blendshapes, static (51) and per contour bin.
        self.static_m, self.static_c = self._weighted(
            sel.faces[sel.static_faces], sel.static_bary, s, w
        )
        n_bins, n_contour = sel.dynamic_faces.shape
        dyn_m, dyn_c = self._weighted(
            sel.faces[sel.dynamic_faces.reshape(-1)], sel.dynamic_bary.reshape(-1, 3), s, w
        )
        self.dynamic_m = dyn_m.view(n_bins, n_contour, *dyn_m.shape[1:])
        self.dynamic_c = dyn_c.view(n_bins, n_contour, -1)
        # Joints' blendshapes: d J / d beta, (J * 3, L).
        self.joint_dirs = torch.einsum("jv,vkl->jkl", model.j_regressor, s).reshape(-1, s.shape[2])

    @staticmethod
    def _weighted(
        corner_ids: torch.Tensor, bary: torch.Tensor, shapedirs: torch.Tensor, weights: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``M[l, k] = sum_c bary[l, c] w[v_lc, k] S[v_lc]`` (N, J, 3, L) and the summed
        weights ``c[l, k]`` (N, J)."""
        wc = weights[corner_ids] * bary[..., None]  # (N, 3 corners, J)
        m = torch.einsum("ncj,ncal->njal", wc, shapedirs[corner_ids])
        return m, wc.sum(1)

    def __call__(
        self,
        shape: torch.Tensor,
        expression: torch.Tensor,
        jaw: torch.Tensor,
        rotation: torch.Tensor,
        translation: torch.Tensor,
        focal: float,
        cx: float,
        cy: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        model, b = self.model, len(rotation)
        pose = full_pose(rotation, jaw)
        rot_mats = batch_rodrigues(pose.reshape(-1, 3)).view(b, -1, 3, 3)
        betas = torch.cat([shape, expression], 1)
        v_shaped = model.v_template + torch.einsum("bl,vkl->bvk", betas, model.shapedirs)
        joints = torch.einsum("jv,bvk->bjk", model.j_regressor, v_shaped)
        _, transforms = rigid_transforms(rot_mats, joints, model.parents)
        rot_k = transforms[..., :3, :3]  # (B, J, 3, 3)
        # The transforms' translations are linear in the joints: their derivative, column by
        # column, is the translation of the chain applied to unit joints.
        n_q = self.n_joints * 3
        unit = torch.eye(n_q, dtype=rot_mats.dtype, device=rot_mats.device).view(n_q, -1, 3)
        _, basis = rigid_transforms(
            rot_mats.repeat_interleave(n_q, 0), unit.repeat(b, 1, 1), model.parents
        )
        d_trans = basis[..., :3, 3].reshape(b, n_q, self.n_joints, 3).permute(0, 2, 3, 1)
        joint_term = torch.einsum("bkaq,ql->bkal", d_trans, self.joint_dirs)  # (B, J, 3, L)

        head = rot_mats[:, 0] @ rot_mats[:, 1]
        bins = yaw_bins(yaw_degrees(head), model.selector.yaw_sign)
        dyn_m, dyn_c = self.dynamic_m[bins], self.dynamic_c[bins]  # (B, 17, J, 3, L), (B, 17, J)

        def d_lmk(m: torch.Tensor, c: torch.Tensor, static: bool) -> torch.Tensor:
            if static:  # the same landmark triangles in every frame
                return torch.einsum("bkac,lkcz->blaz", rot_k, m) + torch.einsum(
                    "lk,bkaz->blaz", c, joint_term
                )
            return torch.einsum("bkac,blkcz->blaz", rot_k, m) + torch.einsum(
                "blk,bkaz->blaz", c, joint_term
            )

        d3 = torch.cat(
            [d_lmk(dyn_m, dyn_c, False), d_lmk(self.static_m, self.static_c, True)], 1
        )  # (B, 68, 3, L)

        pts = model(shape, expression, pose, kind="2d")
        cam = pts + translation[:, None, :]
        depth = -cam[..., 2]
        f = float(focal)
        u = cx + f * cam[..., 0] / depth
        v = cy - f * cam[..., 1] / depth
        proj = torch.stack([u, v], -1)
        zero = torch.zeros_like(depth)
        # d(u, v) / d cam, (B, 68, 2, 3)
        dproj = torch.stack(
            [
                torch.stack([f / depth, zero, f * cam[..., 0] / depth**2], -1),
                torch.stack([zero, -f / depth, -f * cam[..., 1] / depth**2], -1),
            ],
            -2,
        )
        d_beta = torch.einsum("blpa,blaz->blpz", dproj, d3)

        def landmarks_of(j: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
            return project_landmarks(model, shape, expression, j, r, translation, focal, cx, cy)

        d_rot = []
        for which in range(6):  # jaw (3), then global rotation (3)
            tangent = torch.zeros(b, 6, dtype=pose.dtype, device=pose.device)
            tangent[:, which] = 1.0
            _, d = jvp(landmarks_of, (jaw, rotation), (tangent[:, :3], tangent[:, 3:]))
            d_rot.append(d)
        d_pose = torch.cat([torch.stack(d_rot, -1), dproj], -1)  # (B, 68, 2, 9)
        return proj, d_beta, d_pose
