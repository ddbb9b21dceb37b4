"""The stand-in head's DECA-format iBUG-68 landmark embedding, dynamic contour included."""

from __future__ import annotations

import numpy as np

from facedyn.flame.landmarks import (
    MAX_YAW_DEG,
    N_CONTOUR,
    N_DYNAMIC_BINS,
    LandmarkEmbedding,
)
from facedyn.flame.synthetic.geometry import _Mesh, canonical_landmarks_2d

# --------------------------------------------------------------------------- landmarks


def _locate(mesh: _Mesh, points: np.ndarray, prefer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangle and barycentric coordinates of frontal points on the face.

    Only front-facing skin triangles are searched (their frontal projection is a proper
    tiling of the face).  ``prefer`` (+1 upper, -1 lower, 0 any) breaks ties on the mouth
    line, where the upper-lip and the lower-lip triangles touch.
    """
    tri = mesh.vertices[mesh.faces[: mesh.n_skin_faces]][:, :, :2]
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    v0, v1 = b - a, c - a
    det = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    ok = det > 1e-12
    faces_idx = np.zeros(len(points), dtype=np.int64)
    bary = np.zeros((len(points), 3))
    centroid_y = tri[:, :, 1].mean(1)
    for k, (p, pref) in enumerate(zip(points, prefer, strict=True)):
        v2 = p[None, :] - a
        with np.errstate(divide="ignore", invalid="ignore"):
            b1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / det
            b2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / det
        bb = np.stack([1.0 - b1 - b2, b1, b2], 1)
        inside = np.flatnonzero(ok & (bb.min(1) >= -1e-9))
        if inside.size == 0:
            raise RuntimeError(f"landmark {k} at {p} is not on the face")  # layout bug
        key = centroid_y[inside] * pref if pref else -bb[inside].min(1)
        best = inside[np.argmax(key)] if pref else inside[np.argmin(key)]
        faces_idx[k] = best
        bary[k] = np.clip(bb[best], 0.0, 1.0) / np.clip(bb[best], 0.0, 1.0).sum()
    return faces_idx, bary


def _yaw_of_bin(b: int) -> float:
    """Yaw in degrees represented by dynamic bin ``b`` (DECA convention, ``yaw_bins``)."""
    return float(b) if b <= MAX_YAW_DEG else -float(b - MAX_YAW_DEG)


def _contour(mesh: _Mesh, heights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(79, 17) triangles and (79, 17, 3) barycentrics of the yaw-dependent jaw contour.

    For every contour height the mesh is cut by the horizontal plane; each cut point lies on
    a triangle edge.  Under yaw psi the projected x of a point is ``x cos psi + z sin psi``;
    points on the side turning away take the cut point with the extreme projected x (the
    silhouette), the others keep the frontal outline (extreme x at psi = 0).
    """
    faces = mesh.faces[: mesh.n_skin_faces]
    verts = mesh.vertices
    out_f = np.zeros((N_DYNAMIC_BINS, N_CONTOUR), dtype=np.int64)
    out_b = np.zeros((N_DYNAMIC_BINS, N_CONTOUR, 3))
    chin_face = int(np.flatnonzero((faces == mesh.chin).any(1))[0])
    chin_bary = (faces[chin_face] == mesh.chin).astype(np.float64)
    yaws = np.radians([_yaw_of_bin(b) for b in range(N_DYNAMIC_BINS)])
    for k, yk in enumerate(heights):
        if k == N_CONTOUR // 2:  # the chin is the bottom pole at every yaw
            out_f[:, k], out_b[:, k] = chin_face, chin_bary
            continue
        tri_idx, pts, corner, frac = [], [], [], []
        for ca, cb in ((0, 1), (1, 2), (2, 0)):
            ya, yb = verts[faces[:, ca], 1], verts[faces[:, cb], 1]
            cross = ((ya - yk) * (yb - yk) <= 0) & (ya != yb)
            t = np.flatnonzero(cross)
            f = (yk - ya[t]) / (yb[t] - ya[t])
            pa, pb = verts[faces[t, ca]], verts[faces[t, cb]]
            tri_idx.append(t)
            pts.append(pa + f[:, None] * (pb - pa))
            corner.append(np.tile([ca, cb], (len(t), 1)))
            frac.append(f)
        t_all, p_all = np.concatenate(tri_idx), np.concatenate(pts)
        c_all, f_all = np.concatenate(corner), np.concatenate(frac)
        side = 1.0 if k > N_CONTOUR // 2 else -1.0  # +x for points 9..16
        for b, psi in enumerate(yaws):
            turning_away = psi * side > 0
            proj = (
                p_all[:, 0] * np.cos(psi) + p_all[:, 2] * np.sin(psi)
                if turning_away
                else p_all[:, 0]
            )
            best = int(np.argmax(proj * side))
            out_f[b, k] = t_all[best]
            out_b[b, k] = 0.0
            out_b[b, k, c_all[best, 0]] = 1.0 - f_all[best]
            out_b[b, k, c_all[best, 1]] += f_all[best]
    return out_f, out_b


def _embedding(mesh: _Mesh) -> LandmarkEmbedding:
    layout = canonical_landmarks_2d()
    static = layout[N_CONTOUR:]
    prefer = np.zeros(len(static), dtype=np.int64)
    prefer[[48 - 17, 54 - 17, 61 - 17, 62 - 17, 63 - 17]] = 1  # upper lip side of the slit
    prefer[[65 - 17, 66 - 17, 67 - 17]] = -1
    s_faces, s_bary = _locate(mesh, static, prefer)
    # Inner lip corners sit exactly on the vertices where the slit ends.
    for lm, vid in ((60, mesh.inner_corners[0]), (64, mesh.inner_corners[1])):
        f = int(np.flatnonzero((mesh.faces[: mesh.n_skin_faces] == vid).any(1))[0])
        s_faces[lm - 17] = f
        s_bary[lm - 17] = (mesh.faces[f] == vid).astype(np.float64)
    d_faces, d_bary = _contour(mesh, layout[:N_CONTOUR, 1])
    return LandmarkEmbedding(
        static_faces=s_faces,
        static_bary=s_bary,
        dynamic_faces=d_faces,
        dynamic_bary=d_bary,
        full_faces=np.concatenate([d_faces[0], s_faces]),
        full_bary=np.concatenate([d_bary[0], s_bary]),
        yaw_sign=1,
    )


def _landmarks(mesh: _Mesh, emb: LandmarkEmbedding, verts: np.ndarray) -> np.ndarray:
    """Frontal (yaw 0) 68 landmarks of a vertex array (..., V, 3) -> (..., 68, 3)."""
    tri = mesh.faces[emb.full_faces]  # (68, 3)
    return np.einsum("lk,...lkd->...ld", emb.full_bary, verts[..., tri, :])
