"""A procedural, SYNTHETIC head written in FLAME's file layout -- NOT the FLAME model.

.. warning::

   Everything in this module is a hand-written procedural stand-in.  It is **not** FLAME,
   it is not derived from FLAME or from any scan, landmark file or statistical face model,
   and its components have nothing to do with FLAME's PCA bases.  Numbers produced with it
   say nothing about real faces.  It exists so that the pipeline, its tests and the
   synthetic cohort run offline without the licensed FLAME download.

What it is good for: exercising every code path that consumes a FLAME model -- the pkl
loader, linear blend skinning, the DECA-format landmark embedding with its 79 yaw bins,
landmark-based fitting, and the synthetic-video generator that warps a photo to projected
landmarks -- with a head whose 68 iBUG landmarks look and move like a face's.

Geometry (all in metres; +y up, +z out of the face towards the camera, +x to the image
right, i.e. the subject's left; the root joint is at the origin):

* The skin is a closed surface of horizontal cross-sections ("rings"; only the mouth slit is
  open): each ring has a face half (boxy at the forehead and eyes, rounder below) and an
  elliptic back half, and its half-width ``W(y)`` is the frontal outline.
  Below ear level ``W(y)`` *is* the iBUG jaw contour, so at yaw 0 the contour landmarks lie
  exactly on the silhouette.  Facial features (nose, brows, eye sockets, lips, chin,
  cheekbones) are depth (z) offsets, so every skin vertex keeps its ring's height and
  frontal (x, y) layout -- which makes landmark placement exact.
* The mouth is a slit: the vertices along the mouth line between the inner lip corners
  are duplicated, the upper-lip triangles use one copy and the lower-lip triangles the
  other, so the jaw (or the ``lips_part`` expression) opens the mouth.
* Two small eyeball spheres (disconnected meshes) are skinned 100% to the eye joints.

Joints (FLAME's order): 0 root (back of the head, at the origin), 1 neck, 2 jaw (midpoint
of the two jaw hinges), 3 left eye (+x), 4 right eye (-x); ``J = J_regressor @ v_shaped``
with a handful of vertices per joint, so joints follow identity shape.

Pose: (B, 15) axis-angle ``[global, neck, jaw, eye_l, eye_r]``.  **A positive rotation of
the jaw about +x opens the mouth** (the chin moves down, -y), as in FLAME.

Skinning: lower lip, chin and the jaw line follow the jaw joint with a smooth falloff
towards the cheeks; the upper lip, nose and the rest of the head follow the neck, the
nape partly the root.  Pose correctives (``posedirs``) are non-zero only for the jaw's
features and only on vertices with a fractional jaw weight (a slight cheek hollowing as
the mouth opens), so a jaw rotation moves nothing but jaw-skinned vertices.

Blendshapes (``shapedirs`` (V, 3, 400), FLAME's layout): identity in columns 0..299,
expression in 300..399; only the first ``n_shape`` / ``n_expr`` columns are non-zero.  The
first components are interpretable (:data:`IDENTITY_COMPONENTS`,
:data:`EXPRESSION_COMPONENTS`), the rest are smooth random fields (identity) or small local
bumps (expression) with decaying magnitude; coefficients ~ N(0, 1) give plausible variation
and 2-3 a strong but anatomically plausible expression.  ``blink`` closes both eyes at
coefficient :data:`BLINK_CLOSED_COEFF`.  Only the random components depend on ``seed``.

Landmark embedding (DECA's ``landmark_embedding.npy``): iBUG-68 points placed from a
procedural mean-face layout (parametric curves, :func:`canonical_landmarks_2d`; no landmark
data is copied from anywhere).  The 79 x 17 dynamic contour follows the DECA yaw
convention of :func:`facedyn.flame.landmarks.yaw_bins` with ``yaw_sign=+1``: bin ``b`` in
0..39 is yaw ``+b`` degrees and bin ``b`` in 40..78 is yaw ``-(b - 39)`` degrees, positive yaw
turning the nose towards +x.  For each bin the contour points on the side that turns away
sit on the projected silhouette of the head at their own height; those on the side that
turns towards the camera stay on the frontal jawline.  The file is written byte-for-byte
reproducibly (torch's own tensor pickling embeds memory addresses, so the tensors are
pickled as ``torch.from_numpy(array)``, which loads back to the same tensors).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.interpolate import PchipInterpolator

from facedyn.atomic import atomic_write_bytes
from facedyn.flame.io import (
    N_JOINTS,
    FlameArrays,
    save_flame_pickle,
)
from facedyn.flame.landmarks import (
    MAX_YAW_DEG,
    N_CONTOUR,
    N_DYNAMIC_BINS,
    N_LANDMARKS,
    LandmarkEmbedding,
    save_landmark_embedding,
)

GENERATOR_VERSION = "1"
MAX_SHAPE = 300
MAX_EXPR = 100
#: Coefficient of the ``blink`` expression at which both eyes are closed.
BLINK_CLOSED_COEFF = 2.5
#: Sign of the jaw rotation about +x that opens the mouth.
JAW_OPEN_SIGN = 1.0
PARENTS = np.array([-1, 0, 1, 1, 1], dtype=np.int64)
JOINT_NAMES = ("root", "neck", "jaw", "eye_l", "eye_r")
FILE_NAMES = {
    "model": "synthetic_head.pkl",
    "landmark_embedding": "landmark_embedding.npy",
    "components": "components.json",
    "readme": "README.txt",
}
SYNTHETIC_STATEMENT = (
    "SYNTHETIC: a procedural stand-in head written in FLAME's file layout. "
    "It is NOT the FLAME model, not derived from FLAME or any real face data; "
    "its components are hand-made, and results obtained with it say nothing about real faces."
)

#: Interpretable identity components (columns 0..), coefficient 1 = one "standard deviation".
IDENTITY_COMPONENTS: tuple[tuple[str, str], ...] = (
    ("head_size", "uniform scale of the whole head, 3% per unit"),
    ("face_width", "horizontal scale, 3% per unit"),
    ("face_length", "lower face lengthened below the eyes, 3.5% per unit"),
    ("jaw_width", "jaw widened towards the gonial angles"),
    ("chin_prominence", "chin forward and slightly down"),
    ("nose_projection", "nose further out of the face"),
    ("nose_length", "nose tip and base lower"),
    ("eye_spacing", "eyes (and eyeballs) further apart"),
    ("brow_height", "brows higher"),
    ("mouth_width", "mouth corners further apart"),
    ("cheek_fullness", "cheeks fuller (outwards)"),
    ("lip_thickness", "fuller lips (upper lip up, lower lip down)"),
)

#: Interpretable expression components (columns 300..); "left" = the subject's left = +x.
EXPRESSION_COMPONENTS: tuple[tuple[str, str], ...] = (
    ("smile", "both mouth corners up and out, cheeks lifted"),
    ("lip_stretch", "mouth corners pulled sideways"),
    ("pucker", "mouth corners inwards, lips forward"),
    ("brow_raise", "both brows up"),
    ("brow_lower", "frown: inner brows down and together"),
    ("blink", f"both eyes close (upper lids meet the lower lids at {BLINK_CLOSED_COEFF})"),
    ("cheek_raise", "cheeks and lower lids up (squint)"),
    ("upper_lip_raise", "upper lip up"),
    ("lip_press", "lips pressed thin"),
    ("lips_part", "lips part without moving the jaw"),
    ("smile_left", "the subject's left (+x) mouth corner up and out"),
    ("smile_right", "the subject's right (-x) mouth corner up and out"),
    ("inner_brow_raise", "inner ends of the brows up"),
    ("mouth_frown", "mouth corners down"),
    ("eyes_wide", "upper lids up"),
)

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
    pts[31:36] = [[-0.0145, -0.0435], [-0.0075, -0.0465], [0.0, -0.048],
                  [0.0075, -0.0465], [0.0145, -0.0435]]
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
    pts[48:60] = [[-_MOUTH_X, _Y_MOUTH], [-0.0165, -0.0635], [-0.0075, -0.0605],
                  [0.0, -0.0615], [0.0075, -0.0605], [0.0165, -0.0635], [_MOUTH_X, _Y_MOUTH],
                  [0.0165, -0.0735], [0.0085, -0.0775], [0.0, -0.0785], [-0.0085, -0.0775],
                  [-0.0165, -0.0735]]
    # 60-67 inner lip on the mouth line: corner, upper 61-63, corner, lower 65-67.
    pts[60:68] = [[-_INNER_CORNER_X, _Y_MOUTH], [-0.0085, _Y_MOUTH], [0.0, _Y_MOUTH],
                  [0.0085, _Y_MOUTH], [_INNER_CORNER_X, _Y_MOUTH], [0.0085, _Y_MOUTH],
                  [0.0, _Y_MOUTH], [-0.0085, _Y_MOUTH]]
    return pts


# --------------------------------------------------------------------------- skin relief

# Nose protrusion and width along the midline (listed top-down, fitted bottom-up).
_NOSE_Y = np.array([0.012, 0.004, -0.010, -0.025, -0.033, -0.037, -0.041, -0.045, -0.048, -0.052])
_NOSE_H = np.array([0.0, 0.001, 0.009, 0.019, 0.026, 0.028, 0.0245, 0.013, 0.004, 0.0])
_NOSE_P = PchipInterpolator(_NOSE_Y[::-1], _NOSE_H[::-1], extrapolate=False)
_NOSE_W = PchipInterpolator([-0.052, -0.036, -0.020, 0.0, 0.012],
                            [0.009, 0.0075, 0.0055, 0.0042, 0.004])


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


def _face_half_depth(s: np.ndarray, y: np.ndarray, z_front: np.ndarray, z_wide: np.ndarray
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


def _uv_sphere(centre: np.ndarray, radius: float, n_lat: int = 5, n_lon: int = 12
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
    extremes = np.array([south, north, idx(mid, 0), idx(mid, n_lon // 4),
                         idx(mid, n_lon // 2), idx(mid, 3 * n_lon // 4)])
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
    parts = [ring, ring[grid[mouth_row, slit_cols]], np.array([[0.0, _YTOP, _ZMID],
                                                               [0.0, _YCHIN, _Z8]])]
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


# --------------------------------------------------------------------------- skinning


def _col(mesh: _Mesh, phi: float) -> int:
    return int(np.argmin(np.abs(np.angle(np.exp(1j * (mesh.col_phi - phi))))))


def _row(mesh: _Mesh, y: float) -> int:
    return int(np.argmin(np.abs(mesh.rows_y - y)))


def _inner_corner_x(mesh: _Mesh) -> float:
    return float(mesh.vertices[mesh.inner_corners[1], 0])


def _slit_profile(mesh: _Mesh, x: np.ndarray) -> np.ndarray:
    """1 along the middle of the mouth slit, 0 at and beyond the inner lip corners."""
    return _smoothstep((_inner_corner_x(mesh) - np.abs(x)) / 0.006)


def _jaw_weights(mesh: _Mesh) -> np.ndarray:
    """Jaw skinning weight per vertex: lower lip, chin and jaw line, smooth towards the cheeks.

    Below a boundary that runs along the mouth line, drops under the cheeks and rises along
    the ramus, the weight ramps to 1 over 16 mm.  Lower-lip vertices along the slit get their
    weight from the slit profile instead, so the lips part most in the middle and stay
    joined at the corners; upper-side vertices have weight 0.
    """
    x, y, _ = mesh.vertices.T
    aphi = np.abs(mesh.phi)
    ax = np.abs(x)
    x_ic = _inner_corner_x(mesh)
    front = _Y_MOUTH - 0.012 * _smoothstep((ax - x_ic) / 0.022)
    side = _smoothstep((aphi - np.radians(60.0)) / np.radians(35.0))
    boundary = front * (1.0 - side) + (-0.035) * side
    w = _smoothstep((boundary - y) / 0.016)
    lip = np.where(mesh.lower & (ax < x_ic), _slit_profile(mesh, x), 0.0)
    w = np.maximum(w, lip)
    w *= _smoothstep((np.radians(110.0) - aphi) / np.radians(20.0))
    return np.where(mesh.skin, w, 0.0)


def _skinning_weights(mesh: _Mesh) -> np.ndarray:
    """(V, 5) weights over [root, neck, jaw, eye_l, eye_r]; rows sum to 1."""
    _, y, z = mesh.vertices.T
    n_v = len(mesh.vertices)
    jaw = _jaw_weights(mesh)
    # The nape follows the root partly, as the neck base does in FLAME.
    root = 0.6 * _smoothstep((-0.045 - y) / 0.03) * _smoothstep((-0.02 - z) / 0.03)
    root = np.where(mesh.skin, np.minimum(root, 1.0 - jaw), 0.0)
    weights = np.zeros((n_v, N_JOINTS))
    weights[:, 0] = root
    weights[:, 2] = jaw
    weights[:, 1] = np.where(mesh.skin, 1.0 - root - jaw, 0.0)
    weights[mesh.eye_vertices[0], 3] = 1.0
    weights[mesh.eye_vertices[1], 4] = 1.0
    return weights


def _joint_regressor(mesh: _Mesh) -> np.ndarray:
    """(5, V) sparse regressor: a few vertices per joint, rows summing to 1."""
    reg = np.zeros((N_JOINTS, len(mesh.vertices)))
    half_pi = 0.5 * np.pi
    for joint, height in ((0, -0.070), (1, -0.045)):  # root below the neck joint, at the back
        r = _row(mesh, height)
        reg[joint, mesh.grid[r, _col(mesh, half_pi)]] = 0.35
        reg[joint, mesh.grid[r, _col(mesh, -half_pi)]] = 0.35
        reg[joint, mesh.grid[r, _col(mesh, np.pi)]] = 0.30
    # Jaw hinge: midpoint of both temporomandibular joints, just in front of the ears.
    r = _row(mesh, -0.020)
    for phi in (half_pi, -half_pi, 0.46 * np.pi, -0.46 * np.pi):
        reg[2, mesh.grid[r, _col(mesh, phi)]] += 0.25
    for joint, ext in zip((3, 4), mesh.eye_extremes, strict=True):
        reg[joint, ext] = 1.0 / len(ext)
    return reg


def _pose_correctives(mesh: _Mesh, jaw: np.ndarray) -> np.ndarray:
    """(V, 3, 36) posedirs: only the jaw's (R - I)[2, 1] feature, as a slight cheek hollowing
    on vertices whose jaw weight is fractional; everything else is zero."""
    posedirs = np.zeros((len(mesh.vertices), 3, 9 * (N_JOINTS - 1)))
    band = 4.0 * jaw * (1.0 - jaw)
    feature = 9 * (2 - 1) + 3 * 2 + 1  # joint 2 (jaw), entry (2, 1) ~ sin(opening angle)
    posedirs[:, 0, feature] = -0.006 * band * np.sin(mesh.phi)
    return posedirs


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
            proj = p_all[:, 0] * np.cos(psi) + p_all[:, 2] * np.sin(psi) if turning_away \
                else p_all[:, 0]
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


# --------------------------------------------------------------------------- blendshapes


def _field_points(mesh: _Mesh) -> np.ndarray:
    """Vertex positions where the identity fields are sampled: eyeball vertices use their
    eyeball's centre so the eyes move rigidly with the face around them."""
    pts = mesh.vertices.copy()
    for idx, centre in zip(mesh.eye_vertices, mesh.eye_centres, strict=True):
        pts[idx] = centre
    return pts


def _front_mask(mesh: _Mesh) -> np.ndarray:
    return np.where(mesh.skin, _smoothstep((np.cos(mesh.phi) - 0.05) / 0.35), 1.0)


def _identity_basis(mesh: _Mesh, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 300) identity directions; coefficient 1 is one standard deviation."""
    p = _field_points(mesh)
    x, y, _ = p.T
    ax = np.abs(x)
    fm = _front_mask(mesh)
    dirs = np.zeros((len(p), 3, MAX_SHAPE))

    def vec(g: np.ndarray, v: tuple[float, float, float]) -> np.ndarray:
        return g[:, None] * np.asarray(v)[None, :]

    nose = np.nan_to_num(_NOSE_P(np.clip(y, -0.052, 0.012))) / 0.028
    nose = nose * np.exp(-0.5 * (x / _NOSE_W(np.clip(y, -0.052, 0.012))) ** 2)
    zero = np.zeros_like(x)
    named = [
        0.03 * (p - np.array([0.0, 0.0, -0.01])),  # head_size, about the head's centre
        np.stack([0.03 * x, zero, zero], 1),  # face_width
        np.stack([zero, 0.035 * y * _smoothstep((0.005 - y) / 0.03), zero], 1),  # face_length
        np.stack([0.07 * x * _smoothstep(-y / 0.08), zero, zero], 1),  # jaw_width
        vec(fm * _gauss(x, y, 0.0, -0.09, 0.018, 0.012), (0.0, -0.0015, 0.004)),  # chin
        vec(fm * nose, (0.0, 0.0, 0.0035)),  # nose_projection
        vec(fm * _gauss(x, y, 0.0, -0.040, 0.014, 0.012), (0.0, -0.0025, 0.0005)),  # nose_length
        vec(fm * np.sign(x) * _gauss(ax, y, 0.03, 0.0, 0.016, 0.014), (0.0015, 0.0, 0.0)),
        vec(fm * np.exp(-0.5 * ((y - 0.019) / 0.008) ** 2) * _smoothstep((0.07 - ax) / 0.02),
            (0.0, 0.002, 0.0)),  # brow_height
        vec(fm * (x / _MOUTH_X) * _gauss(x, y, 0.0, _Y_MOUTH, 0.025, 0.01), (0.0022, 0.0, 0.0)),
        0.0025 * (fm * _gauss(ax, y, 0.045, -0.035, 0.015, 0.02))[:, None]
        * np.stack([np.sin(mesh.phi), zero, np.cos(mesh.phi)], 1),  # cheek_fullness
        vec(fm * (_gauss(x, y, 0.0, -0.062, 0.015, 0.003)
                  - 1.2 * _gauss(x, y, 0.0, -0.078, 0.015, 0.0035)), (0.0, 0.001, 0.0)),
    ]
    assert len(named) == len(IDENTITY_COMPONENTS)
    for k, d in enumerate(named):
        dirs[:, :, k] = d

    # The rest: smooth random fields (4 plane waves each, mostly mirror-symmetric), with a
    # wavelength and an RMS that shrink with the index, like a PCA spectrum.
    n0 = len(named)
    n_rand, n_waves = MAX_SHAPE - n0, 4
    rank = np.arange(n_rand, dtype=np.float64)
    wave_dir = rng.normal(size=(n_rand, n_waves, 3))
    wave_dir /= np.linalg.norm(wave_dir, axis=-1, keepdims=True)
    wavelength = rng.uniform(0.12, 0.30, size=(n_rand, n_waves)) / (1.0 + rank[:, None] / 60.0)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=(n_rand, n_waves))
    amp = rng.normal(size=(n_rand, n_waves, 3))
    symmetric = rng.random(n_rand) < 0.75
    omega = 2.0 * np.pi * wave_dir / wavelength[..., None]
    mirror = p * np.array([-1.0, 1.0, 1.0])
    field = np.einsum("rwk,rwv->vkr", amp, np.sin(np.einsum("rwd,vd->rwv", omega, p)
                                                   + phase[..., None]))
    field_m = np.einsum("rwk,rwv->vkr", amp, np.sin(np.einsum("rwd,vd->rwv", omega, mirror)
                                                     + phase[..., None]))
    field_m[:, 0] *= -1.0
    field = np.where(symmetric[None, None, :], 0.5 * (field + field_m), field)
    rms = np.sqrt((field[mesh.skin] ** 2).sum(1).mean(0))
    sigma = 0.0012 * (1.0 + rank / 8.0) ** -0.8
    dirs[:, :, n0:] = field * (sigma / rms)[None, None, :]
    return dirs


def _blink_field(mesh: _Mesh) -> np.ndarray:
    """(V,) downward lid displacement that would close both eyes at coefficient 1.

    Between the lids the displacement ramps from 0 (lower lid) to the full opening (upper
    lid) with flat zones of 10% at both lids, so the lid landmarks move as a block (the
    skin between them folds slightly when closed); above the upper lid it fades out within
    a centimetre.
    """
    x, y, _ = mesh.vertices.T
    dy = np.zeros(len(x))
    for sgn in (1.0, -1.0):
        x_out, x_in = sgn * _EYE_X_OUT, sgn * _EYE_X_IN
        s = (x - x_out) / (x_in - x_out)
        up, low = _lids(s)
        opening = np.where((s > 0.0) & (s < 1.0), up - low, 0.0)
        ramp = _smoothstep((y - low - 0.1 * opening) / (0.8 * opening + 1e-12))
        fade = np.where(y > up, np.exp(-0.5 * ((y - up) / 0.006) ** 2), ramp)
        dy -= opening * fade
    return np.where(mesh.skin, dy, 0.0)


def _expression_basis(mesh: _Mesh, emb: LandmarkEmbedding, rng: np.random.Generator
                      ) -> np.ndarray:
    """(V, 3, 100) expression directions; eyeballs never move."""
    x, y, _ = mesh.vertices.T
    fm = _front_mask(mesh)
    lower = mesh.lower
    slit = _slit_profile(mesh, x)
    line_fade = (1.0 - slit) * np.exp(-0.5 * ((y - _Y_MOUTH) / 0.004) ** 2)

    def vec(g: np.ndarray, v: tuple[float, float, float]) -> np.ndarray:
        return g[:, None] * np.asarray(v)[None, :]

    def corner(sgn: float, sx: float = 0.011, sy: float = 0.009) -> np.ndarray:
        return _gauss(x, y, sgn * _MOUTH_X, _Y_MOUTH, sx, sy)

    def smile(sides: tuple[float, ...]) -> np.ndarray:
        d = np.zeros((len(x), 3))
        for sgn in sides:
            d += vec(corner(sgn), (sgn * 0.0018, 0.0024, -0.0008))
            d += vec(_gauss(x, y, sgn * 0.036, -0.033, 0.014, 0.014), (sgn * 0.0004, 0.0012, 0.0006))
        return d

    def both(fn: Any) -> np.ndarray:
        return fn(1.0) + fn(-1.0)

    def upper_only(v_full: np.ndarray, v_line: np.ndarray) -> np.ndarray:
        # Lower-side vertices take the mouth-line value faded out, except along the slit,
        # so the field is continuous wherever the mesh is.
        return np.where(lower[:, None], v_line * line_fade[:, None], v_full)

    brow_y = np.where(y > 0.019, np.exp(-0.5 * ((y - 0.019) / 0.012) ** 2),
                      np.exp(-0.5 * ((y - 0.019) / 0.0065) ** 2))
    blink = _blink_field(mesh)
    ulr = _gauss(x, y, 0.0, -0.061, 0.017, 0.008)
    ulr_line = _gauss(x, np.full_like(y, _Y_MOUTH), 0.0, -0.061, 0.017, 0.008)
    part = slit * _gauss(x, y, 0.0, _Y_MOUTH, 0.02, 0.006)
    named = [
        smile((1.0, -1.0)),
        both(lambda s: vec(corner(s, 0.013, 0.010), (s * 0.0025, -0.0005, -0.0006))),
        np.stack([-0.0042 * x / _MOUTH_X, np.zeros_like(x), np.full_like(x, 0.0025)], 1)
        * _gauss(x, y, 0.0, _Y_MOUTH, 0.022, 0.013)[:, None],  # pucker
        vec(brow_y * _smoothstep((0.072 - np.abs(x)) / 0.02), (0.0, 0.0028, 0.0)),
        both(lambda s: vec(_gauss(x, y, s * 0.016, 0.017, 0.013, 0.008),
                           (-s * 0.0012, -0.0022, 0.0003))),  # brow_lower
        vec(blink, (0.0, 1.0, 0.0)),  # rescaled below
        both(lambda s: vec(_gauss(x, y, s * 0.036, -0.022, 0.014, 0.012), (0.0, 0.0018, 0.0006))
             + vec(_gauss(x, y, s * _EYE_CENTRE_X, -0.005, 0.011, 0.0035), (0.0, 0.0008, 0.0))),
        upper_only(vec(ulr, (0.0, 0.0018, 0.0004)), vec(ulr_line, (0.0, 0.0018, 0.0004))),
        vec(_gauss(x, y, 0.0, -0.062, 0.016, 0.004), (0.0, -0.0012, -0.0005))
        + vec(_gauss(x, y, 0.0, -0.077, 0.016, 0.005), (0.0, 0.0014, -0.0005)),  # lip_press
        vec(np.where(lower, -0.0018, 0.0012) * part, (0.0, 1.0, 0.0)),  # lips_part
        smile((1.0,)),
        smile((-1.0,)),
        both(lambda s: vec(_gauss(x, y, s * 0.014, 0.018, 0.012, 0.008), (0.0, 0.0025, 0.0))),
        both(lambda s: vec(corner(s), (s * 0.0003, -0.0022, 0.0))),  # mouth_frown
        vec(blink, (0.0, 1.0, 0.0)),  # eyes_wide, rescaled below
    ]
    assert len(named) == len(EXPRESSION_COMPONENTS)
    dirs = np.zeros((len(x), 3, MAX_EXPR))
    for k, d in enumerate(named):
        dirs[:, :, k] = d * fm[:, None]

    # Scale the blink so the four lid pairs close, on average, at BLINK_CLOSED_COEFF.
    lm0 = _landmarks(mesh, emb, mesh.vertices)
    lm1 = _landmarks(mesh, emb, mesh.vertices + dirs[:, :, 5])
    pairs = np.array([[37, 41], [38, 40], [43, 47], [44, 46]])
    gap0 = lm0[pairs[:, 0], 1] - lm0[pairs[:, 1], 1]
    rate = (lm1 - lm0)[pairs[:, 0], 1] - (lm1 - lm0)[pairs[:, 1], 1]
    blink_scale = float(np.mean(gap0 / -rate)) / BLINK_CLOSED_COEFF
    dirs[:, :, 5] *= blink_scale
    dirs[:, :, 14] *= -0.4 * blink_scale

    # The rest: small local bumps on the face with decaying magnitude.
    n0 = len(named)
    n_rand = MAX_EXPR - n0
    rank = np.arange(n_rand, dtype=np.float64)
    centre = np.stack([rng.uniform(-0.05, 0.05, n_rand), rng.uniform(-0.092, 0.025, n_rand)], 1)
    width = rng.uniform(0.007, 0.016, n_rand)
    direction = rng.normal(size=(n_rand, 3)) * np.array([1.0, 1.0, 0.5])
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    magnitude = 0.0015 * (1.0 + rank / 6.0) ** -0.6
    bumps = np.exp(-0.5 * ((x[:, None] - centre[None, :, 0]) ** 2
                           + (y[:, None] - centre[None, :, 1]) ** 2) / width[None, :] ** 2)
    bumps *= np.where(mesh.skin, fm, 0.0)[:, None]
    dirs[:, :, n0:] = bumps[:, None, :] * (direction * magnitude[:, None]).T[None, :, :]
    dirs[~mesh.skin] = 0.0
    return dirs


# --------------------------------------------------------------------------- public API


def _check_counts(n_shape: int, n_expr: int, seed: int) -> None:
    if isinstance(n_shape, bool) or not isinstance(n_shape, (int, np.integer)) \
            or not 1 <= n_shape <= MAX_SHAPE:
        raise ValueError(f"n_shape must be an integer in 1..{MAX_SHAPE}, got {n_shape!r}")
    if isinstance(n_expr, bool) or not isinstance(n_expr, (int, np.integer)) \
            or not 1 <= n_expr <= MAX_EXPR:
        raise ValueError(f"n_expr must be an integer in 1..{MAX_EXPR}, got {n_expr!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _component_list(names: tuple[tuple[str, str], ...], n: int, rest: str) -> list[dict[str, Any]]:
    out = []
    for k in range(n):
        if k < len(names):
            out.append({"index": k, "name": names[k][0], "description": names[k][1]})
        else:
            out.append({"index": k, "name": f"{rest}_{k:03d}", "description": rest.replace("_", " ")})
    return out


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


def build_synthetic_head(n_shape: int = 100, n_expr: int = 50, seed: int = 0
                         ) -> tuple[FlameArrays, LandmarkEmbedding, dict[str, Any]]:
    """Build the procedural head in memory (pure; deterministic given the arguments).

    Args:
        n_shape: identity components to fill (1..300); columns beyond are zero.
        n_expr: expression components to fill (1..100); columns beyond are zero.
        seed: seeds the random (non-interpretable) components only.

    Returns:
        FLAME-layout arrays (float64, root joint at the origin), the DECA-format landmark
        embedding (``yaw_sign=+1``) and a JSON-ready metadata dict naming the components.

    Raises:
        ValueError: ``n_shape`` / ``n_expr`` out of range or a negative seed.
    """
    _check_counts(n_shape, n_expr, seed)
    mesh = _build_mesh()
    emb = _embedding(mesh)
    rng = np.random.default_rng(int(seed))
    identity = _identity_basis(mesh, rng)
    expression = _expression_basis(mesh, emb, rng)
    identity[:, :, n_shape:] = 0.0
    expression[:, :, n_expr:] = 0.0
    weights = _skinning_weights(mesh)
    j_regressor = _joint_regressor(mesh)
    vertices = _lower_face_proportions(mesh.vertices)
    # Put the root joint at the origin, as FLAME's template roughly has it.
    v_template = vertices - j_regressor[0] @ vertices
    arrays = FlameArrays(
        v_template=v_template,
        faces=mesh.faces.copy(),
        shapedirs=np.concatenate([identity, expression], axis=2),
        posedirs=_pose_correctives(mesh, weights[:, 2]),
        j_regressor=j_regressor,
        weights=weights,
        parents=PARENTS.copy(),
    )
    meta: dict[str, Any] = {
        "synthetic": True,
        "statement": SYNTHETIC_STATEMENT,
        "generator": "facedyn.flame.synthetic",
        "generator_version": GENERATOR_VERSION,
        "n_shape": int(n_shape),
        "n_expr": int(n_expr),
        "seed": int(seed),
        "n_vertices": len(v_template),
        "n_faces": len(mesh.faces),
        "identity": _component_list(IDENTITY_COMPONENTS, n_shape, "random_smooth_field"),
        "expression": _component_list(EXPRESSION_COMPONENTS, n_expr, "random_local_bump"),
        "blink_closed": BLINK_CLOSED_COEFF,
        "jaw_open_sign": JAW_OPEN_SIGN,
        "conventions": {
            "units": "metres",
            "axes": "+y up, +z out of the face (towards the camera), +x image right "
                    "(the subject's left)",
            "joints": list(JOINT_NAMES),
            "pose": "(B, 15) axis-angle [global, neck, jaw, eye_l, eye_r]",
            "jaw_open": "a positive rotation of the jaw about +x opens the mouth",
            "blink_closed_coefficient": BLINK_CLOSED_COEFF,
            "left_right": "'left' is the subject's left (+x)",
            "landmarks": "iBUG-68; dynamic contour bins follow DECA (yaw_sign=+1): bin b<=39 "
                         "is yaw +b deg, bin b>=40 is yaw -(b-39) deg; positive yaw turns the "
                         "nose towards +x",
        },
    }
    return arrays, emb, meta


def _readme(meta: dict[str, Any]) -> str:
    ident = ", ".join(c["name"] for c in meta["identity"][: len(IDENTITY_COMPONENTS)])
    expr = ", ".join(c["name"] for c in meta["expression"][: len(EXPRESSION_COMPONENTS)])
    return (
        "SYNTHETIC HEAD -- THIS IS NOT THE FLAME MODEL\n"
        "=============================================\n\n"
        f"{SYNTHETIC_STATEMENT}\n\n"
        "Written by facedyn.flame.synthetic (generator version "
        f"{meta['generator_version']}; n_shape={meta['n_shape']}, n_expr={meta['n_expr']}, "
        f"seed={meta['seed']}).\n"
        "It only mimics FLAME's file layout so that code written for FLAME runs offline:\n"
        f"  {FILE_NAMES['model']:<24}FLAME-format pkl ({meta['n_vertices']} vertices, "
        f"{meta['n_faces']} faces, shapedirs identity 0..299, expression 300..399)\n"
        f"  {FILE_NAMES['landmark_embedding']:<24}DECA-format iBUG-68 landmark embedding\n"
        f"  {FILE_NAMES['components']:<24}names of the components and the conventions\n\n"
        f"Interpretable identity components (first columns): {ident}.\n"
        f"Interpretable expression components (columns 300..): {expr}.\n"
        "A positive jaw rotation about +x opens the mouth; blink closes the eyes at "
        f"{BLINK_CLOSED_COEFF}.\n"
        "Do not report results obtained with this head as results about FLAME or real faces.\n"
    )


def write_synthetic_flame(directory: str | os.PathLike[str], n_shape: int = 100,
                          n_expr: int = 50, seed: int = 0) -> dict[str, Path]:
    """Write the procedural head (NOT FLAME) into ``directory``.

    Files: ``synthetic_head.pkl`` (FLAME pkl layout, loadable with
    :func:`facedyn.flame.io.load_flame_arrays`), ``landmark_embedding.npy`` (DECA format,
    readable by :func:`facedyn.flame.landmarks.load_landmark_embedding` and DECA-style
    ``np.load(..., allow_pickle=True)``), ``components.json`` and ``README.txt``.
    Byte-identical for identical arguments.

    Returns:
        ``{"model", "landmark_embedding", "components", "readme"}`` -> path.

    Raises:
        ValueError: ``n_shape`` not in 1..300, ``n_expr`` not in 1..100, or a negative seed.
    """
    arrays, emb, meta = build_synthetic_head(n_shape, n_expr, seed)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {key: out / name for key, name in FILE_NAMES.items()}
    save_flame_pickle(paths["model"], arrays)
    save_landmark_embedding(paths["landmark_embedding"], emb)
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(paths["components"], text.encode("utf-8"))
    atomic_write_bytes(paths["readme"], _readme(meta).encode("utf-8"))
    return paths
