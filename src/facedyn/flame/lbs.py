"""Batched linear blend skinning (LBS) for FLAME, in torch, on any device and dtype.

Follows the published FLAME forward pass (Li et al., SIGGRAPH Asia 2017; the same
algebra as SMPL-X's ``lbs``): blendshapes -> joint regression -> Rodrigues ->
pose correctives -> kinematic chain -> skinning.  Written out here (rather than
depending on ``smplx``) so the landmark-only fast path can reuse it on a vertex
subset and so no chumpy-era code is needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def batch_rodrigues(rot_vecs: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Axis-angle (N, 3) -> rotation matrices (N, 3, 3).

    ``eps`` is added before taking the norm (as FLAME/SMPL-X do) so the zero rotation
    has a finite gradient.
    """
    angle = torch.norm(rot_vecs + eps, dim=1, keepdim=True)  # (N, 1)
    axis = rot_vecs / angle
    cos = torch.cos(angle)[:, :, None]
    sin = torch.sin(angle)[:, :, None]
    rx, ry, rz = axis.unbind(dim=1)
    zeros = torch.zeros_like(rx)
    k = torch.stack([zeros, -rz, ry, rz, zeros, -rx, -ry, rx, zeros], dim=1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=rot_vecs.dtype, device=rot_vecs.device)[None]
    return eye + sin * k + (1 - cos) * torch.bmm(k, k)


def rigid_transforms(
    rot_mats: torch.Tensor, joints: torch.Tensor, parents: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chain per-joint rotations along the kinematic tree.

    Args:
        rot_mats: (B, J, 3, 3) local rotations.
        joints: (B, J, 3) rest-pose joint locations.
        parents: parent index per joint, -1 for the root; parents precede children.

    Returns:
        posed joints (B, J, 3) and relative transforms (B, J, 4, 4) that map rest-pose
        points to posed points.
    """
    n_j = joints.shape[1]
    rel = joints.clone()
    for j in range(1, n_j):
        rel[:, j] = joints[:, j] - joints[:, parents[j]]
    local = torch.cat(
        [F.pad(rot_mats, (0, 0, 0, 1)), F.pad(rel[..., None], (0, 0, 0, 1), value=1.0)], dim=3
    )  # (B, J, 4, 4)
    chain = [local[:, 0]]
    for j in range(1, n_j):
        chain.append(chain[parents[j]] @ local[:, j])
    world = torch.stack(chain, dim=1)
    posed_joints = world[:, :, :3, 3]
    # Remove the rest-pose joint location so transforms act on rest-pose vertices.
    rest = F.pad(torch.einsum("bjmn,bjn->bjm", world[:, :, :3, :3], joints), (0, 1))
    rel_transforms = world - F.pad(rest[..., None], (3, 0))
    return posed_joints, rel_transforms


def lbs(
    betas: torch.Tensor,
    pose: torch.Tensor,
    v_template: torch.Tensor,
    shapedirs: torch.Tensor,
    posedirs: torch.Tensor,
    j_regressor: torch.Tensor,
    parents: list[int],
    weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FLAME forward pass.

    Args:
        betas: (B, L) shape and expression coefficients, concatenated.
        pose: (B, 3 * J) axis-angle per joint.
        v_template: (V, 3).
        shapedirs: (V, 3, L) blendshapes matching ``betas``.
        posedirs: (9 * (J - 1), V * 3) pose correctives, the 9(J-1) axis first.
        j_regressor: (J, V) dense; may cover only a vertex subset when the caller
            passes the matching subset of every per-vertex array (fast path).
        parents: kinematic tree.
        weights: (V, J) skinning weights.

    Returns:
        vertices (B, V, 3) and posed joints (B, J, 3).
    """
    b = betas.shape[0]
    n_j = len(parents)
    v_shaped = v_template + torch.einsum("bl,vkl->bvk", betas, shapedirs)
    joints = torch.einsum("jv,bvk->bjk", j_regressor, v_shaped)
    rot_mats = batch_rodrigues(pose.reshape(-1, 3)).view(b, n_j, 3, 3)
    eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
    pose_feature = (rot_mats[:, 1:] - eye).reshape(b, -1)
    v_posed = v_shaped + (pose_feature @ posedirs).view(b, -1, 3)
    posed_joints, transforms = rigid_transforms(rot_mats, joints, parents)
    # Blend the rotation and translation parts separately (the transforms' last row is
    # constant): no slice of a (B, V, 4, 4) tensor reaches autograd, whose backward would fill
    # a tensor that size. einsum applies the blended rotations as one batched product, which
    # on CPU costs about half of a broadcast multiply and sum (forward and backward).
    rotation = (weights @ transforms[:, :, :3, :3].reshape(b, n_j, 9)).view(b, -1, 3, 3)
    translation = weights @ transforms[:, :, :3, 3]
    verts = torch.einsum("bvij,bvj->bvi", rotation, v_posed) + translation
    return verts, posed_joints
