"""The stand-in head's blendshapes: identity (interpretable anatomy, then smooth random
fields) and expression (interpretable local movements, then small random bumps)."""

from __future__ import annotations

from typing import Any

import numpy as np

from facedyn.flame.landmarks import LandmarkEmbedding
from facedyn.flame.synthetic.embedding import _landmarks
from facedyn.flame.synthetic.geometry import (
    _EYE_CENTRE_X,
    _EYE_X_IN,
    _EYE_X_OUT,
    _MOUTH_X,
    _NOSE_P,
    _NOSE_W,
    _Y_MOUTH,
    _gauss,
    _lids,
    _Mesh,
    _smoothstep,
)
from facedyn.flame.synthetic.rig import _slit_profile

MAX_SHAPE = 300
MAX_EXPR = 100
#: Coefficient of the ``blink`` expression at which both eyes are closed.
BLINK_CLOSED_COEFF = 2.5

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
        vec(
            fm * np.exp(-0.5 * ((y - 0.019) / 0.008) ** 2) * _smoothstep((0.07 - ax) / 0.02),
            (0.0, 0.002, 0.0),
        ),  # brow_height
        vec(fm * (x / _MOUTH_X) * _gauss(x, y, 0.0, _Y_MOUTH, 0.025, 0.01), (0.0022, 0.0, 0.0)),
        0.0025
        * (fm * _gauss(ax, y, 0.045, -0.035, 0.015, 0.02))[:, None]
        * np.stack([np.sin(mesh.phi), zero, np.cos(mesh.phi)], 1),  # cheek_fullness
        vec(
            fm
            * (
                _gauss(x, y, 0.0, -0.062, 0.015, 0.003)
                - 1.2 * _gauss(x, y, 0.0, -0.078, 0.015, 0.0035)
            ),
            (0.0, 0.001, 0.0),
        ),
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
    field = np.einsum(
        "rwk,rwv->vkr", amp, np.sin(np.einsum("rwd,vd->rwv", omega, p) + phase[..., None])
    )
    field_m = np.einsum(
        "rwk,rwv->vkr", amp, np.sin(np.einsum("rwd,vd->rwv", omega, mirror) + phase[..., None])
    )
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


def _expression_basis(mesh: _Mesh, emb: LandmarkEmbedding, rng: np.random.Generator) -> np.ndarray:
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
            d += vec(
                _gauss(x, y, sgn * 0.036, -0.033, 0.014, 0.014), (sgn * 0.0004, 0.0012, 0.0006)
            )
        return d

    def both(fn: Any) -> np.ndarray:
        return fn(1.0) + fn(-1.0)

    def upper_only(v_full: np.ndarray, v_line: np.ndarray) -> np.ndarray:
        # Lower-side vertices take the mouth-line value faded out, except along the slit,
        # so the field is continuous wherever the mesh is.
        return np.where(lower[:, None], v_line * line_fade[:, None], v_full)

    brow_y = np.where(
        y > 0.019,
        np.exp(-0.5 * ((y - 0.019) / 0.012) ** 2),
        np.exp(-0.5 * ((y - 0.019) / 0.0065) ** 2),
    )
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
        both(
            lambda s: vec(
                _gauss(x, y, s * 0.016, 0.017, 0.013, 0.008), (-s * 0.0012, -0.0022, 0.0003)
            )
        ),  # brow_lower
        vec(blink, (0.0, 1.0, 0.0)),  # rescaled below
        both(
            lambda s: (
                vec(_gauss(x, y, s * 0.036, -0.022, 0.014, 0.012), (0.0, 0.0018, 0.0006))
                + vec(_gauss(x, y, s * _EYE_CENTRE_X, -0.005, 0.011, 0.0035), (0.0, 0.0008, 0.0))
            )
        ),
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
    bumps = np.exp(
        -0.5
        * ((x[:, None] - centre[None, :, 0]) ** 2 + (y[:, None] - centre[None, :, 1]) ** 2)
        / width[None, :] ** 2
    )
    bumps *= np.where(mesh.skin, fm, 0.0)[:, None]
    dirs[:, :, n0:] = bumps[:, None, :] * (direction * magnitude[:, None]).T[None, :, :]
    dirs[~mesh.skin] = 0.0
    return dirs
