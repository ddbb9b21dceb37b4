"""Geometry of the procedural stand-in head: the frontal layout, the skin relief and the
mesh (rings of vertices, the mouth slit, two eyeballs), in the build frame (eye level y = 0)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

from facedyn.flame.landmarks import N_LANDMARKS

# --------------------------------------------------------------------------- layout
# Face frame used while building: y = 0 at eye level, x = 0 midline; shifted at the end so
# that the root joint sits at the origin.

# The jaw contour's width, squareness and length relative to the eyes and mouth follow where
# dlib places the iBUG contour on real faces (about 1.9 outer-eye-corner distances wide at eye
# level): a face whose outline a detector expects can be read without distorting its photo.
_X0 = 0.082  # half-width of the jaw contour at its top (points 0 / 16)
_Y0 = 0.003  # height of contour points 0 / 16
_YCHIN = -0.097  # chin (point 8), the lowest point of the head
_JAW_P, _JAW_Q = 3.0, 2.5  # super-ellipse exponents of the jaw outline (a squarish jaw)
_YS, _YTOP, _WMAX = 0.035, 0.120, 0.082  # start of the cranial cap, crown, widest skull
_ZF, _ZB, _ZMID, _Z8 = 0.088, -0.105, -0.012, 0.068  # face front, back, crown, chin depths
_YF, _YB, _YWJ = -0.082, -0.030, -0.045  # where front, back and widest-line bend to the chin
_Y_MOUTH = -0.068  # mouth line (the slit)
_EYE_X_OUT, _EYE_X_IN = 0.043, 0.0145  # eye corners (|x|)
_EYE_UP, _EYE_LOW = 0.0055, 0.0047  # lid heights at mid-eye
_EYE_CENTRE_X = 0.5 * (_EYE_X_OUT + _EYE_X_IN)
_EYEBALL_R = 0.012
_MOUTH_X = 0.025  # outer mouth corners (|x|)
_INNER_CORNER_X = 0.0215  # target |x| of the inner lip corners 60 / 64 (snapped to a vertex)


def _smoothstep(t: np.ndarray | float) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _gauss(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - cx) / sx) ** 2 - 0.5 * ((y - cy) / sy) ** 2)


def _jaw_t(y: np.ndarray) -> np.ndarray:
    return np.clip((_Y0 - y) / (_Y0 - _YCHIN), 0.0, 1.0)


def _jaw_halfwidth(t: np.ndarray) -> np.ndarray:
    return _X0 * np.clip(1.0 - t**_JAW_P, 0.0, 1.0) ** (1.0 / _JAW_Q)


def _cap(y: np.ndarray) -> np.ndarray:
    """Elliptic roll-off of the cranial cap above ``_YS`` (1 below it, 0 at the crown)."""
    u = np.clip((y - _YS) / (_YTOP - _YS), 0.0, 1.0)
    return np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0))


def _quarter(y: np.ndarray, y_start: float) -> np.ndarray:
    """sqrt(1 - u^2) with u going 0 -> 1 from ``y_start`` down to the chin."""
    u = np.clip((y_start - y) / (y_start - _YCHIN), 0.0, 1.0)
    return np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0))


def _profiles(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ring parameters at heights ``y``: half-width, front, back and widest-point depths."""
    y = np.asarray(y, dtype=np.float64)
    cap = _cap(y)
    above = y > _YS
    w = np.where(
        y <= _Y0,
        _jaw_halfwidth(_jaw_t(y)),
        _X0 + (_WMAX - _X0) * _smoothstep((y - _Y0) / (_YS - _Y0)),
    )
    w = np.where(above, _WMAX * cap, w)
    z_front = np.where(y < _YF, _Z8 + (_ZF - _Z8) * _quarter(y, _YF), _ZF)
    z_back = np.where(y < _YB, _Z8 - (_Z8 - _ZB) * _quarter(y, _YB), _ZB)
    z_wide = np.where(y < _YWJ, _Z8 - _Z8 * _quarter(y, _YWJ), 0.0)
    z_front = np.where(above, _ZMID + (_ZF - _ZMID) * cap, z_front)
    z_back = np.where(above, _ZMID + (_ZB - _ZMID) * cap, z_back)
    z_wide = np.where(above, _ZMID + (0.0 - _ZMID) * cap, z_wide)
    return w, z_front, z_back, z_wide


def _resample_curve(points: np.ndarray, n: int) -> np.ndarray:
    """``n`` points equally spaced in arc length along a dense polyline."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    target = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(target, s, points[:, k]) for k in range(points.shape[1])], axis=1)


def _lids(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower lid heights at fraction ``s`` (0 outer corner, 1 inner corner)."""
    hump = np.sin(np.pi * np.clip(s, 0.0, 1.0))
    tilt = 0.0008 * (1.0 - np.clip(s, 0.0, 1.0))  # outer corner slightly higher
    return tilt + _EYE_UP * hump**0.7, tilt - _EYE_LOW * hump**0.9


def canonical_landmarks_2d() -> np.ndarray:
    """The procedural frontal iBUG-68 layout (68, 2) in the build frame (eye level y = 0).

    Parametric curves with mean-face proportions: jaw contour = super-ellipse from ear
    level to the chin (equal arc length), arched brows, almond eyes, straight nose, lips
    around a horizontal mouth line.  Contour x values are refined onto the mesh outline
    when the embedding is built.
    """
    pts = np.zeros((N_LANDMARKS, 2))
    # 0-16 jaw contour: image-left (-x) ear level -> chin -> image-right.
    t = np.linspace(0.0, 1.0, 400)
    half = np.stack([-_jaw_halfwidth(t), _Y0 - t * (_Y0 - _YCHIN)], axis=1)
    full = np.concatenate([half, half[::-1][1:] * [-1.0, 1.0]])
    pts[0:17] = _resample_curve(full, 17)
    pts[8, 0] = 0.0
    # 17-21 right brow (image-left), outer -> inner; 22-26 mirrored, inner -> outer.
    s = np.linspace(0.0, 1.0, 5)
    brow_x = -0.058 + s * (0.058 - 0.0125)
    brow_y = 0.0125 + 0.0095 * (1.0 - (1.6 * (s - 0.6)) ** 2)
    pts[17:22] = np.stack([brow_x, brow_y], axis=1)
    pts[22:27] = pts[21:16:-1] * [-1.0, 1.0]
    # 27-30 nose bridge -> tip; 31-35 nostril base, image-left -> image-right.
    pts[27:31, 1] = np.linspace(0.0015, -0.036, 4)
    pts[31:36] = [
        [-0.0145, -0.0435],
        [-0.0075, -0.0465],
        [0.0, -0.048],
        [0.0075, -0.0465],
        [0.0145, -0.0435],
    ]
    # 36-41 right eye (image-left): outer corner, two upper-lid points, inner corner, lower lid.
    fr = np.array([0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0])
    ex = -_EYE_X_OUT + fr * (_EYE_X_OUT - _EYE_X_IN)
    up, low = _lids(fr)
    pts[36:40] = np.stack([ex, up], axis=1)
    pts[40] = [ex[2], low[2]]
    pts[41] = [ex[1], low[1]]
    # 42-47 left eye: mirror of 39, 38, 37, 36, 41, 40.
    pts[42:48] = pts[[39, 38, 37, 36, 41, 40]] * [-1.0, 1.0]
    # 48-59 outer lip: 48 image-left corner, over the upper lip to 54, back along the lower.
    pts[48:60] = [
        [-_MOUTH_X, _Y_MOUTH],
        [-0.0165, -0.0635],
        [-0.0075, -0.0605],
        [0.0, -0.0615],
        [0.0075, -0.0605],
        [0.0165, -0.0635],
        [_MOUTH_X, _Y_MOUTH],
        [0.0165, -0.0735],
        [0.0085, -0.0775],
        [0.0, -0.0785],
        [-0.0085, -0.0775],
        [-0.0165, -0.0735],
    ]
    # 60-67 inner lip on the mouth line: corner, upper 61-63, corner, lower 65-67.
    pts[60:68] = [
        [-_INNER_CORNER_X, _Y_MOUTH],
        [-0.0085, _Y_MOUTH],
        [0.0, _Y_MOUTH],
        [0.0085, _Y_MOUTH],
        [_INNER_CORNER_X, _Y_MOUTH],
        [0.0085, _Y_MOUTH],
        [0.0, _Y_MOUTH],
        [-0.0085, _Y_MOUTH],
    ]
    return pts


# --------------------------------------------------------------------------- skin relief

# Nose protrusion and width along the midline (listed top-down, fitted bottom-up).
_NOSE_Y = np.array([0.012, 0.004, -0.010, -0.025, -0.033, -0.037, -0.041, -0.045, -0.048, -0.052])
_NOSE_H = np.array([0.0, 0.001, 0.009, 0.019, 0.026, 0.028, 0.0245, 0.013, 0.004, 0.0])
_NOSE_P = PchipInterpolator(_NOSE_Y[::-1], _NOSE_H[::-1], extrapolate=False)
_NOSE_W = PchipInterpolator(
    [-0.052, -0.036, -0.020, 0.0, 0.012], [0.009, 0.0075, 0.0055, 0.0042, 0.004]
)


def _relief(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Depth offsets (z) of the facial features at frontal positions (x, y)."""
    ax = np.abs(x)
    prof = np.nan_to_num(_NOSE_P(np.clip(y, -0.052, 0.012)))
    dz = prof * np.exp(-0.5 * (x / _NOSE_W(np.clip(y, -0.052, 0.012))) ** 2)
    dz += 0.009 * _gauss(ax, y, 0.0125, -0.0425, 0.0048, 0.0045)  # alae
    dz += 0.005 * np.exp(-0.5 * ((y - 0.018) / 0.008) ** 2) * _smoothstep((0.065 - ax) / 0.02)
    dz -= 0.004 * _gauss(x, y, 0.0, 0.004, 0.012, 0.006)  # nasion
    dz -= 0.016 * _gauss(ax, y, 0.031, 0.0, 0.013, 0.011)  # eye sockets
    dz += 0.005 * _gauss(ax, y, _EYE_CENTRE_X, 0.0, 0.009, 0.006)  # eyeballs under the lids
    dz += 0.008 * _gauss(ax, y, 0.050, -0.015, 0.016, 0.014)  # cheekbones
    dz += 0.006 * _gauss(ax, y, 0.042, -0.052, 0.012, 0.016)  # cheeks beside the mouth
    dz += 0.005 * _gauss(x, y, 0.0, -0.062, 0.016, 0.0045)  # upper lip
    dz += 0.006 * _gauss(x, y, 0.0, -0.074, 0.015, 0.0045)  # lower lip
    dz -= 0.004 * _gauss(ax, y, _MOUTH_X + 0.001, _Y_MOUTH, 0.004, 0.004)  # mouth corners
    dz -= 0.004 * _gauss(x, y, 0.0, -0.083, 0.015, 0.004)  # labiomental fold
    dz += 0.005 * _gauss(x, y, 0.0, -0.089, 0.012, 0.006)  # chin
    return dz


def _face_half_depth(
    s: np.ndarray, y: np.ndarray, z_front: np.ndarray, z_wide: np.ndarray
) -> np.ndarray:
    """Depth of the face half of a ring at ``s = x / W`` (before the features).

    ``sqrt(1 - |s|^n)``: an ellipse for n = 2, boxier for larger n.  The forehead and eye
    level are boxy (n = 4, a broad flat front that turns sharply at the temples), the lower
    face rounder (n = 2.2), as on real heads; this puts the silhouette of a turned head well
    outside the eye and mouth corners.
    """
    n = 2.2 + 1.8 * _smoothstep((y + 0.04) / 0.04)
    return z_wide + (z_front - z_wide) * np.sqrt(np.clip(1.0 - np.abs(s) ** n, 0.0, 1.0))


# --------------------------------------------------------------------------- mesh


@dataclass(frozen=True)
class _Mesh:
    """Template mesh in the build frame plus the per-vertex bookkeeping the fields need."""

    vertices: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3)
    n_skin_faces: int  # faces [0, n_skin_faces) are skin, the rest eyeballs
    phi: np.ndarray  # (V,) ring azimuth of skin vertices (0 = front); 0 for eyeballs
    skin: np.ndarray  # (V,) bool
    lower: np.ndarray  # (V,) bool: below the mouth line, or the lower copy of a slit vertex
    eye_vertices: tuple[np.ndarray, np.ndarray]  # eyeball vertex indices: left (+x), right
    eye_extremes: tuple[np.ndarray, np.ndarray]  # 6 axis-extreme vertices of each eyeball
    eye_centres: np.ndarray  # (2, 3) left, right
    grid: np.ndarray  # (rows, cols) vertex index of the ring vertices
    col_phi: np.ndarray  # (cols,) column azimuths
    rows_y: np.ndarray  # (rows,) ring heights
    mouth_row: int
    inner_corners: tuple[int, int]  # vertex index of the inner lip corners (-x, +x)
    chin: int  # vertex index of the chin (bottom pole)


def _column_angles(n_front: int = 48, n_back: int = 16) -> np.ndarray:
    """Ring azimuths, denser on the face, with columns exactly at 0, +-90 and 180 degrees."""
    s = np.linspace(-1.0, 1.0, n_front + 1)
    front = 0.5 * np.pi * (0.6 * s + 0.4 * s**3)
    step = np.pi / n_back
    back_r = 0.5 * np.pi + step * np.arange(1, n_back // 2 + 1)
    back_l = -back_r[:-1][::-1]  # -180 degrees is the same column as +180
    return np.concatenate([back_l, front, back_r])


def _row_heights() -> tuple[np.ndarray, int]:
    """Ring heights (ascending, chin pole excluded) and the index of the mouth-line ring."""

    def spacing(y: np.ndarray) -> np.ndarray:
        h = np.full_like(y, 0.0022)
        h = np.where((y > -0.009) & (y < 0.009), 0.0013, h)  # eyelids need fine rows
        h = np.where((y > -0.082) & (y < -0.057), 0.0014, h)  # lips
        h = np.where(y < -0.090, 0.0012, h)  # chin bottom, where the outline turns fast
        return np.where(y > 0.02, 0.0026, h)

    def segment(a: float, b: float) -> np.ndarray:
        fine = np.linspace(a, b, 4001)
        inv = 1.0 / spacing(fine)
        dens = np.concatenate([[0.0], np.cumsum(0.5 * (inv[1:] + inv[:-1]) * np.diff(fine))])
        n = max(1, round(float(dens[-1])))
        return np.interp(np.linspace(0.0, dens[-1], n + 1), dens, fine)

    low = segment(_YCHIN, _Y_MOUTH)[1:]  # the chin itself is the bottom pole
    high = segment(_Y_MOUTH, _YS)[1:]
    theta = np.linspace(0.0, 0.5 * np.pi, 12)[1:-1]  # cranial cap, uniform in angle
    cap = _YS + (_YTOP - _YS) * np.sin(theta)
    return np.concatenate([low, high, cap]), len(low) - 1


def _uv_sphere(
    centre: np.ndarray, radius: float, n_lat: int = 5, n_lon: int = 12
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sphere vertices, outward-wound faces and the indices of its 6 axis-extreme vertices."""
    lat = np.linspace(-0.5 * np.pi, 0.5 * np.pi, n_lat + 2)[1:-1]
    lon = np.arange(n_lon) * 2 * np.pi / n_lon
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    ring = np.stack([np.cos(la) * np.sin(lo), np.sin(la), np.cos(la) * np.cos(lo)], -1)
    unit = np.concatenate([[[0.0, -1.0, 0.0]], ring.reshape(-1, 3), [[0.0, 1.0, 0.0]]])
    south, north = 0, len(unit) - 1

    def idx(i: int, j: int) -> int:
        return 1 + i * n_lon + (j % n_lon)

    faces = []
    for j in range(n_lon):
        faces.append([south, idx(0, j), idx(0, j + 1)])
        faces.append([north, idx(n_lat - 1, j + 1), idx(n_lat - 1, j)])
        for i in range(n_lat - 1):
            a, b, c, d = idx(i, j), idx(i, j + 1), idx(i + 1, j + 1), idx(i + 1, j)
            faces += [[a, b, c], [a, c, d]]
    mid = n_lat // 2  # the equator (n_lat is odd)
    extremes = np.array(
        [
            south,
            north,
            idx(mid, 0),
            idx(mid, n_lon // 4),
            idx(mid, n_lon // 2),
            idx(mid, 3 * n_lon // 4),
        ]
    )
    return centre + radius * unit, np.array(faces, dtype=np.int64), extremes


def _build_mesh() -> _Mesh:
    col_phi = _column_angles()
    rows_y, mouth_row = _row_heights()
    n_rows, n_cols = len(rows_y), len(col_phi)
    w, zf, zb, zw = _profiles(rows_y)
    sin_p, cos_p = np.sin(col_phi), np.cos(col_phi)
    x = w[:, None] * sin_p[None, :]
    y = np.broadcast_to(rows_y[:, None], x.shape)
    z_face = _face_half_depth(sin_p[None, :], rows_y[:, None], zf[:, None], zw[:, None])
    z = np.where(cos_p[None, :] >= 0, z_face, zw[:, None] + (zw - zb)[:, None] * cos_p[None, :])
    # Features only on the face half; depth offsets keep every vertex's frontal (x, y).
    z = z + _smoothstep((cos_p - 0.05) / 0.35)[None, :] * _relief(x, y)
    ring = np.stack([x, y, z], -1).reshape(-1, 3)
    n_ring = len(ring)
    grid = np.arange(n_ring).reshape(n_rows, n_cols)

    # Mouth slit: duplicate the mouth-line vertices strictly between the inner lip corners.
    xm = x[mouth_row]
    back = 10.0 * (cos_p < 0)
    right_col = int(np.argmin(np.abs(xm - _INNER_CORNER_X) + back))
    left_col = int(np.argmin(np.abs(xm + _INNER_CORNER_X) + back))
    slit_cols = np.flatnonzero((np.abs(xm) < xm[right_col] - 1e-9) & (cos_p > 0))
    dup = {int(c): n_ring + k for k, c in enumerate(slit_cols)}
    top_pole = n_ring + len(slit_cols)
    chin = top_pole + 1
    parts = [
        ring,
        ring[grid[mouth_row, slit_cols]],
        np.array([[0.0, _YTOP, _ZMID], [0.0, _YCHIN, _Z8]]),
    ]
    phi = [np.tile(col_phi, n_rows), col_phi[slit_cols], np.zeros(2)]

    faces: list[list[int]] = []
    for j in range(n_rows - 1):
        for i in range(n_cols):
            i2 = (i + 1) % n_cols
            a, b, c, d = grid[j, i], grid[j, i2], grid[j + 1, i2], grid[j + 1, i]
            if j + 1 == mouth_row:  # lower-lip strip: the lower copies of the slit vertices
                c, d = dup.get(i2, c), dup.get(i, d)
            if col_phi[i] >= 0:  # mirror-symmetric diagonals keep left/right alike
                faces += [[a, b, c], [a, c, d]]
            else:
                faces += [[a, b, d], [b, c, d]]
    for i in range(n_cols):
        i2 = (i + 1) % n_cols
        faces.append([chin, grid[0, i2], grid[0, i]])
        faces.append([top_pole, grid[-1, i], grid[-1, i2]])
    n_skin_faces = len(faces)
    n_skin = chin + 1

    eye_vertices, eye_extremes, centres = [], [], []
    start = n_skin
    for sgn in (1.0, -1.0):  # FLAME's order: left eye (+x) first
        ex = np.array([sgn * _EYE_CENTRE_X])
        w0, zf0, _, zw0 = _profiles(np.zeros(1))
        surf = _face_half_depth(ex / w0, np.zeros(1), zf0, zw0) + _relief(ex, np.zeros(1))
        centre = np.array([ex[0], 0.0, float(surf[0]) - _EYEBALL_R - 0.0015])
        sv, sf, ext = _uv_sphere(centre, _EYEBALL_R)
        faces += (sf + start).tolist()
        eye_vertices.append(np.arange(start, start + len(sv)))
        eye_extremes.append(start + ext)
        centres.append(centre)
        parts.append(sv)
        phi.append(np.zeros(len(sv)))
        start += len(sv)

    vertices = np.concatenate(parts)
    skin = np.arange(len(vertices)) < n_skin
    lower = np.zeros(len(vertices), dtype=bool)
    lower[:n_ring] = ring[:, 1] < _Y_MOUTH - 1e-9
    lower[n_ring:top_pole] = True
    lower[chin] = True
    return _Mesh(
        vertices=vertices,
        faces=np.array(faces, dtype=np.int64),
        n_skin_faces=n_skin_faces,
        phi=np.concatenate(phi),
        skin=skin,
        lower=lower,
        eye_vertices=(eye_vertices[0], eye_vertices[1]),
        eye_extremes=(eye_extremes[0], eye_extremes[1]),
        eye_centres=np.array(centres),
        grid=grid,
        col_phi=col_phi,
        rows_y=rows_y,
        mouth_row=mouth_row,
        inner_corners=(int(grid[mouth_row, left_col]), int(grid[mouth_row, right_col])),
        chin=chin,
    )


# Eye level -> subnasale -> stomion -> chin, in the build frame, before and after: the
# layout above is built with a short chin; adult proportions are closer to 45 / 20 / 43 mm
# (subnasale, upper lip, lower face), which is also where dlib's mean face puts them.
_PROPORTION_FROM = np.array([-0.097, -0.068, -0.048, -0.030, -0.020])
_PROPORTION_TO = np.array([-0.113, -0.065, -0.045, -0.030, -0.020])


def _lower_face_proportions(vertices: np.ndarray) -> np.ndarray:
    """Monotone vertical remap of the lower face (x and z untouched).

    Applied to the finished template: every basis, weight and landmark embedding is tied
    to vertices rather than positions, so they all follow, and since only heights change,
    the vertices on a turned head's silhouette (the dynamic contour) stay the same.
    """
    remap = PchipInterpolator(_PROPORTION_FROM, _PROPORTION_TO, extrapolate=False)
    y = vertices[:, 1]
    low = y < _PROPORTION_FROM[-1]
    out = vertices.copy()
    inside = low & (y >= _PROPORTION_FROM[0])
    out[inside, 1] = remap(y[inside])
    below = low & (y < _PROPORTION_FROM[0])  # nothing is below the chin; kept for safety
    out[below, 1] = _PROPORTION_TO[0] + (y[below] - _PROPORTION_FROM[0])
    return out
