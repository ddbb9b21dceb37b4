"""The stand-in head's rig: skinning weights, joint regressor and pose correctives."""

from __future__ import annotations

import numpy as np

from facedyn.flame.io import N_JOINTS
from facedyn.flame.synthetic.geometry import _Y_MOUTH, _Mesh, _smoothstep

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
