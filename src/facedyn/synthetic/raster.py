"""A small depth-tested triangle rasteriser for the synthetic cohort's frames.

Why our own: the cohort is regenerated on every fresh run, on machines with no GPU and no
OpenGL context (CI, clusters' login nodes), at a budget of a few milliseconds per 320x240
frame on one core. OpenGL-based renderers (pyrender, moderngl) need a display or an EGL /
OSMesa driver that a pip install cannot provide, and differentiable renderers (pytorch3d,
nvdiffrast) need CUDA builds. A z-buffer over a few thousand small triangles, compiled with
numba, fits the budget and installs from PyPI everywhere.

Conventions: pixel centres sit at integer coordinates (the projection's principal point is
``((W - 1) / 2, (H - 1) / 2)``), ``depth`` is the distance along the viewing axis (smaller is
nearer), and a triangle is *front-facing* when its screen-space corners run counter-clockwise
in image coordinates (y down), which is the winding of the head's outward faces under the
projection of :func:`facedyn.flame.camera.project`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Material codes (per face).
SKIN, CAVITY, TEETH, TONGUE = 0, 1, 2, 3
#: Face id bit marking a back-facing hit (the inside of a surface, seen through an opening).
BACK_BIT = 1 << 30


@njit(cache=True, nogil=True)
def rasterize(
    screen: np.ndarray,
    depth: np.ndarray,
    faces: np.ndarray,
    two_sided: np.ndarray,
    zbuf: np.ndarray,
    face_id: np.ndarray,
    bary: np.ndarray,
) -> tuple[int, int, int, int]:
    """Z-buffer the triangles into ``face_id`` / ``bary``; returns the touched box.

    Args:
        screen: (V, 2) float32 pixel coordinates.
        depth: (V,) float32 depth (smaller is nearer).
        faces: (F, 3) int32 vertex indices.
        two_sided: (F,) bool; one-sided faces are culled when back-facing, two-sided ones are
            kept with :data:`BACK_BIT` set in their id.
        zbuf, face_id, bary: (H, W), (H, W), (H, W, 2) buffers, reset inside the touched box.

    Returns:
        (x0, y0, x1, y1), inclusive pixel box of everything drawn (x1 < x0 when nothing).
    """
    height, width = zbuf.shape
    x_lo, y_lo, x_hi, y_hi = width, height, -1, -1
    for v in range(screen.shape[0]):  # reset only where this frame can draw
        xv, yv = screen[v, 0], screen[v, 1]
        if xv < x_lo:
            x_lo = max(0, int(np.floor(xv)))
        if xv > x_hi:
            x_hi = min(width - 1, int(np.ceil(xv)))
        if yv < y_lo:
            y_lo = max(0, int(np.floor(yv)))
        if yv > y_hi:
            y_hi = min(height - 1, int(np.ceil(yv)))
    for y in range(y_lo, y_hi + 1):
        for x in range(x_lo, x_hi + 1):
            zbuf[y, x] = np.inf
            face_id[y, x] = -1
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        ax, ay = screen[a, 0], screen[a, 1]
        bx, by = screen[b, 0], screen[b, 1]
        cx, cy = screen[c, 0], screen[c, 1]
        area = (bx - ax) * (cy - ay) - (cx - ax) * (by - ay)
        if area == 0.0:
            continue
        back = area > 0.0
        if back and not two_sided[f]:
            continue
        fx0 = max(x_lo, int(np.ceil(min(ax, bx, cx))))
        fx1 = min(x_hi, int(np.floor(max(ax, bx, cx))))
        fy0 = max(y_lo, int(np.ceil(min(ay, by, cy))))
        fy1 = min(y_hi, int(np.floor(max(ay, by, cy))))
        if fx1 < fx0 or fy1 < fy0:
            continue
        inv = 1.0 / area
        za, zb, zc = depth[a], depth[b], depth[c]
        fid = f | BACK_BIT if back else f
        for y in range(fy0, fy1 + 1):
            for x in range(fx0, fx1 + 1):
                # barycentric weights of b and c; a gets the rest
                wb = ((x - ax) * (cy - ay) - (cx - ax) * (y - ay)) * inv
                wc = ((bx - ax) * (y - ay) - (x - ax) * (by - ay)) * inv
                wa = 1.0 - wb - wc
                if wa < 0.0 or wb < 0.0 or wc < 0.0:
                    continue
                z = wa * za + wb * zb + wc * zc
                if z < zbuf[y, x]:
                    zbuf[y, x] = z
                    face_id[y, x] = fid
                    bary[y, x, 0] = wb
                    bary[y, x, 1] = wc
    return x_lo, y_lo, x_hi, y_hi


@njit(cache=True, nogil=True)
def shade(
    frame: np.ndarray,
    face_id: np.ndarray,
    bary: np.ndarray,
    box: tuple[int, int, int, int],
    faces: np.ndarray,
    material: np.ndarray,
    tex_coords: np.ndarray,
    texture: np.ndarray,
    vertex_colour: np.ndarray,
    vertex_light: np.ndarray,
    cavity_colour: np.ndarray,
) -> None:
    """Colour the drawn pixels of ``frame`` (in place) from the rasteriser's buffers.

    Front-facing skin samples ``texture`` (bilinear) at the interpolated ``tex_coords``; the
    inside of the skin (a back-facing hit, seen through the parted lips) is the cavity;
    teeth and tongue interpolate ``vertex_colour``. Every colour is scaled by the
    interpolated ``vertex_light``.
    """
    x0, y0, x1, y1 = box
    th, tw = texture.shape[0], texture.shape[1]
    for y in range(y0, y1 + 1):
        for x in range(x0, x1 + 1):
            fid = face_id[y, x]
            if fid < 0:
                continue
            back = (fid & BACK_BIT) != 0
            f = fid & (BACK_BIT - 1)
            wb, wc = bary[y, x, 0], bary[y, x, 1]
            wa = 1.0 - wb - wc
            a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
            light = wa * vertex_light[a] + wb * vertex_light[b] + wc * vertex_light[c]
            m = material[f]
            if m == SKIN and not back:
                u = wa * tex_coords[a, 0] + wb * tex_coords[b, 0] + wc * tex_coords[c, 0]
                v = wa * tex_coords[a, 1] + wb * tex_coords[b, 1] + wc * tex_coords[c, 1]
                u = min(max(u, 0.0), tw - 1.001)
                v = min(max(v, 0.0), th - 1.001)
                iu, iv = int(u), int(v)
                fu, fv = u - iu, v - iv
                for k in range(3):
                    top = texture[iv, iu, k] * (1.0 - fu) + texture[iv, iu + 1, k] * fu
                    bottom = texture[iv + 1, iu, k] * (1.0 - fu) + texture[iv + 1, iu + 1, k] * fu
                    val = (top * (1.0 - fv) + bottom * fv) * light
                    frame[y, x, k] = min(255.0, val)
            elif m <= CAVITY:  # the skin seen from inside, or the cavity (SKIN < CAVITY)
                for k in range(3):
                    frame[y, x, k] = min(255.0, cavity_colour[k] * light)
            else:
                for k in range(3):
                    val = (
                        wa * vertex_colour[a, k]
                        + wb * vertex_colour[b, k]
                        + wc * vertex_colour[c, k]
                    ) * light
                    frame[y, x, k] = min(255.0, val)


@njit(cache=True, nogil=True)
def vertex_normals(vertices: np.ndarray, faces: np.ndarray, out: np.ndarray) -> None:
    """Area-weighted unit vertex normals of a mesh (``out``: (V, 3) float32, overwritten)."""
    out[:] = 0.0
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        ux, uy, uz = (
            vertices[b, 0] - vertices[a, 0],
            vertices[b, 1] - vertices[a, 1],
            vertices[b, 2] - vertices[a, 2],
        )
        wx, wy, wz = (
            vertices[c, 0] - vertices[a, 0],
            vertices[c, 1] - vertices[a, 1],
            vertices[c, 2] - vertices[a, 2],
        )
        nx, ny, nz = uy * wz - uz * wy, uz * wx - ux * wz, ux * wy - uy * wx
        out[a, 0] += nx
        out[a, 1] += ny
        out[a, 2] += nz
        out[b, 0] += nx
        out[b, 1] += ny
        out[b, 2] += nz
        out[c, 0] += nx
        out[c, 1] += ny
        out[c, 2] += nz
    for v in range(out.shape[0]):
        norm = np.sqrt(out[v, 0] * out[v, 0] + out[v, 1] * out[v, 1] + out[v, 2] * out[v, 2])
        if norm > 0:
            out[v, 0] /= norm
            out[v, 1] /= norm
            out[v, 2] /= norm


class Rasterizer:
    """Reusable buffers for one frame size."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.zbuf = np.full((height, width), np.inf, np.float32)
        self.face_id = np.full((height, width), -1, np.int32)
        self.bary = np.zeros((height, width, 2), np.float32)

    def draw(
        self,
        frame: np.ndarray,
        screen: np.ndarray,
        depth: np.ndarray,
        faces: np.ndarray,
        two_sided: np.ndarray,
        material: np.ndarray,
        tex_coords: np.ndarray,
        texture: np.ndarray,
        vertex_colour: np.ndarray,
        vertex_light: np.ndarray,
        cavity_colour: np.ndarray,
    ) -> None:
        """Draw a mesh over ``frame`` (H, W, 3 uint8, in place), depth-tested."""
        box = rasterize(screen, depth, faces, two_sided, self.zbuf, self.face_id, self.bary)
        if box[2] >= box[0] and box[3] >= box[1]:
            shade(
                frame,
                self.face_id,
                self.bary,
                box,
                faces,
                material,
                tex_coords,
                texture,
                vertex_colour,
                vertex_light,
                cavity_colour,
            )


__all__ = [
    "BACK_BIT",
    "CAVITY",
    "SKIN",
    "TEETH",
    "TONGUE",
    "Rasterizer",
    "rasterize",
    "shade",
    "vertex_normals",
]
