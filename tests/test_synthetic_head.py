"""The procedural stand-in head (facedyn.flame.synthetic): FLAME layout, landmarks, motion.

The head is NOT FLAME; these tests check that it is a faithful *stand-in*: it loads through
the FLAME loader, its 68 landmarks look like an iBUG mean face, its named components do what
their names say (and little else), the jaw opens the mouth, and the yaw-dependent contour
lands on the silhouette under the DECA yaw-bin convention.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

from facedyn.flame import FLAME, load_flame, write_synthetic_flame
from facedyn.flame.io import EXPR_OFFSET, FlameArrays
from facedyn.flame.landmarks import LandmarkEmbedding, load_landmark_embedding
from facedyn.flame.synthetic import (
    BLINK_CLOSED_COEFF,
    EXPRESSION_COMPONENTS,
    IDENTITY_COMPONENTS,
    JAW_OPEN_SIGN,
    build_synthetic_head,
)

N_SHAPE, N_EXPR = 300, 100
EXPR = {name: k for k, (name, _) in enumerate(EXPRESSION_COMPONENTS)}
IDENT = {name: k for k, (name, _) in enumerate(IDENTITY_COMPONENTS)}
# iBUG-68 left/right mirror pairs (index -> mirrored index).
MIRROR = np.array(
    list(range(16, -1, -1))
    + list(range(26, 16, -1))
    + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)
MM = 1e-3


@lru_cache(maxsize=2)
def _head(seed: int = 0) -> tuple[FlameArrays, LandmarkEmbedding, dict]:
    return build_synthetic_head(N_SHAPE, N_EXPR, seed)


@lru_cache(maxsize=1)
def _flame() -> FLAME:
    arrays, emb, _ = _head()
    return FLAME(arrays, n_shape=N_SHAPE, n_expr=N_EXPR, embedding=emb, dtype=torch.float64)


def _params(
    shape: dict[int, float] | None = None,
    expr: dict[int, float] | None = None,
    pose: dict[int, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    s = torch.zeros(1, N_SHAPE, dtype=torch.float64)
    e = torch.zeros(1, N_EXPR, dtype=torch.float64)
    p = torch.zeros(1, 15, dtype=torch.float64)
    for tensor, values in ((s, shape), (e, expr), (p, pose)):
        for k, v in (values or {}).items():
            tensor[0, k] = v
    return s, e, p


def _lmk(kind: str = "2d", **kw: dict[int, float]) -> np.ndarray:
    return _flame().landmarks(*_params(**kw), kind=kind)[0].numpy()


def _verts(**kw: dict[int, float]) -> np.ndarray:
    return _flame()(*_params(**kw))[0].numpy()


def _skin_faces(arrays: FlameArrays) -> np.ndarray:
    skin = arrays.weights[:, 3:].sum(1) == 0
    return arrays.faces[skin[arrays.faces].all(1)]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_synthetic_flame(tmp_path_factory.mktemp("head"), n_shape=100, n_expr=50, seed=0)


# --------------------------------------------------------------------------- files


def test_files_load_through_the_flame_loader(written: dict[str, Path]) -> None:
    assert {p.name for p in written.values()} == {
        "synthetic_head.pkl",
        "landmark_embedding.npy",
        "components.json",
        "README.txt",
    }
    meta = json.loads(written["components"].read_text())
    assert meta["synthetic"] is True and "NOT the FLAME model" in meta["statement"]
    assert (meta["n_shape"], meta["n_expr"], meta["seed"]) == (100, 50, 0)
    assert [c["name"] for c in meta["expression"][: len(EXPR)]] == list(EXPR)
    assert [c["name"] for c in meta["identity"][: len(IDENT)]] == list(IDENT)
    assert len(meta["identity"]) == 100 and len(meta["expression"]) == 50
    assert meta["blink_closed"] == BLINK_CLOSED_COEFF and meta["jaw_open_sign"] == 1.0
    assert "NOT THE FLAME MODEL" in written["readme"].read_text()

    flame = load_flame(
        written["model"],
        n_shape=100,
        n_expr=50,
        landmark_embedding=written["landmark_embedding"],
        dtype=torch.float64,
    )
    arrays, emb, _ = _head()
    assert 4000 <= len(flame.v_template) <= 6000
    verts = flame(
        torch.zeros(1, 100, dtype=torch.float64),
        torch.zeros(1, 50, dtype=torch.float64),
        torch.zeros(1, 15, dtype=torch.float64),
    )
    np.testing.assert_allclose(verts[0].numpy(), arrays.v_template, atol=1e-12)
    lm3 = flame.landmarks(kind="3d")[0].numpy()
    expected = np.einsum(
        "lk,lkd->ld", emb.full_bary, arrays.v_template[arrays.faces[emb.full_faces]]
    )
    np.testing.assert_allclose(lm3, expected, atol=1e-12)
    np.testing.assert_allclose(flame.landmarks(kind="2d")[0].numpy(), lm3, atol=1e-12)

    loaded = load_landmark_embedding(written["landmark_embedding"])
    for name in ("static_faces", "dynamic_faces", "full_faces"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(emb, name))
    np.testing.assert_allclose(loaded.dynamic_bary, emb.dynamic_bary, atol=1e-6)  # float32 on disk


def test_files_are_deterministic_and_seeded(written: dict[str, Path], tmp_path: Path) -> None:
    again = write_synthetic_flame(tmp_path / "again", n_shape=100, n_expr=50, seed=0)
    for key, path in written.items():
        assert path.read_bytes() == again[key].read_bytes(), key
    other = write_synthetic_flame(tmp_path / "other", n_shape=100, n_expr=50, seed=1)
    assert other["model"].read_bytes() != written["model"].read_bytes()
    assert other["components"].read_bytes() != written["components"].read_bytes()
    # Only the random components depend on the seed; the named ones are fixed.
    a, b = _head(0)[0].shapedirs, _head(1)[0].shapedirs
    np.testing.assert_array_equal(a[..., : len(IDENT)], b[..., : len(IDENT)])
    np.testing.assert_array_equal(
        a[..., EXPR_OFFSET : EXPR_OFFSET + len(EXPR)], b[..., EXPR_OFFSET : EXPR_OFFSET + len(EXPR)]
    )
    assert not np.array_equal(a, b)


def test_component_counts_are_checked_and_unused_columns_zero() -> None:
    for bad in ({"n_shape": 0}, {"n_shape": 301}, {"n_expr": 0}, {"n_expr": 101}, {"seed": -1}):
        with pytest.raises(ValueError):
            build_synthetic_head(**{"n_shape": 10, "n_expr": 10, "seed": 0, **bad})
    arrays, _, meta = build_synthetic_head(n_shape=5, n_expr=3, seed=0)
    dirs = arrays.shapedirs
    assert dirs.shape == (arrays.n_vertices, 3, 400)
    assert np.all(dirs[..., 5:EXPR_OFFSET] == 0) and np.all(dirs[..., EXPR_OFFSET + 3 :] == 0)
    assert np.abs(dirs[..., :5]).reshape(-1, 5).max(0).min() > 0
    assert np.abs(dirs[..., EXPR_OFFSET : EXPR_OFFSET + 3]).reshape(-1, 3).max(0).min() > 0
    assert len(meta["identity"]) == 5 and len(meta["expression"]) == 3


# --------------------------------------------------------------------------- rig


def test_rig_arrays_follow_flame_conventions() -> None:
    arrays, _, _ = _head()
    reg, w = arrays.j_regressor, arrays.weights
    assert arrays.parents.tolist() == [-1, 0, 1, 1, 1]
    np.testing.assert_allclose(reg.sum(1), 1.0, atol=1e-12)
    assert (reg >= 0).all() and ((reg != 0).sum(1) <= 8).all()
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-12)
    assert (w >= 0).all()
    eyes = w[:, 3:].sum(1) > 0
    assert np.isin(w[eyes][:, 3:].max(1), [1.0]).all() and 50 <= eyes.sum() <= 300

    joints = reg @ arrays.v_template
    root, _, jaw, eye_l, eye_r = joints
    np.testing.assert_allclose(root, 0.0, atol=1e-12)
    assert eye_l[0] > 0.02 and eye_r[0] < -0.02 and abs(eye_l[0] + eye_r[0]) < 1e-9
    assert 0.055 <= eye_l[0] - eye_r[0] <= 0.07  # pupil distance
    assert eye_l[1] - 0.01 > jaw[1] > root[1] and abs(jaw[0]) < 1e-9  # hinge below ear level
    lm = _lmk()
    assert jaw[2] < lm[48:68, 2].min() - 0.04  # the hinge is far behind the lips
    assert lm[8, 1] < jaw[1] - 0.06 and lm[27:36, 2].min() > 0.05  # face in front (z > 0)
    width = np.ptp(arrays.v_template[~eyes, 0])
    assert 0.14 <= width <= 0.17  # adult head breadth

    # Pose correctives only where the jaw weight is fractional.
    moving = np.abs(arrays.posedirs).sum((1, 2)) > 0
    assert moving.any() and np.all((w[moving, 2] > 0) & (w[moving, 2] < 1))
    assert np.abs(arrays.posedirs).max() < 0.01

    # Outward winding: positive enclosed volume of the skin and of each eyeball.
    v, f = arrays.v_template, arrays.faces
    skin_f = _skin_faces(arrays)
    vol = np.einsum("ij,ij->i", v[skin_f[:, 0]], np.cross(v[skin_f[:, 1]], v[skin_f[:, 2]])).sum()
    assert vol / 6 > 1e-3  # about 3.5 litres
    eye_f = f[eyes[f].all(1)]
    c = joints[3] if eyes[eye_f[0, 0]] and w[eye_f[0, 0], 3] > 0 else joints[4]
    a, b, d = v[eye_f[:, 0]] - c, v[eye_f[:, 1]] - c, v[eye_f[:, 2]] - c
    assert np.einsum("ij,ij->i", a, np.cross(b, d)).sum() > 0


# --------------------------------------------------------------------------- landmarks


def test_neutral_landmarks_have_ibug68_structure() -> None:
    lm = _lmk()
    x, y = lm[:, 0], lm[:, 1]
    assert np.all(np.diff(x[:17]) > 0), "contour runs from image-left (-x) to image-right"
    assert np.argmin(y[:17]) == 8 and abs(x[8]) < 1e-9
    np.testing.assert_allclose(x[MIRROR], -x, atol=0.3 * MM)
    np.testing.assert_allclose(y[MIRROR], y, atol=0.3 * MM)
    eyes_y = y[36:48].mean()
    assert y[17:27].min() > y[36:48].max()  # brows above eyes
    assert eyes_y > y[30] > y[33] > y[48:68].max() > y[48:68].min() > y[8]
    assert np.all(np.diff(y[27:31]) < 0)  # nose bridge runs downwards to the tip
    assert np.all(np.diff(x[31:36]) > 0) and np.all(np.diff(x[17:22]) > 0)
    assert np.argmax(lm[:, 2]) == 30  # the nose tip sticks out most
    assert 0.08 <= x[45] - x[36] <= 0.10  # outer eye corners
    pupils = lm[42:48, 0].mean() - lm[36:42, 0].mean()
    assert 0.055 <= pupils <= 0.07
    assert 0.04 <= x[54] - x[48] <= 0.06  # mouth width
    assert 0.11 <= y[17:27].max() - y[8] <= 0.14  # brow to chin
    # The contour as dlib places it on real faces: about 1.9 outer-eye-corner distances wide
    # at eye level, with a squarish jaw.
    assert 0.15 <= x[16] - x[0] <= 0.17
    assert 1.75 <= (x[16] - x[0]) / (x[45] - x[36]) <= 2.0
    assert abs(y[0] - eyes_y) < 0.01  # contour starts at about eye level
    assert 0.007 <= lm[[37, 38, 43, 44], 1].mean() - lm[[41, 40, 47, 46], 1].mean() <= 0.012
    np.testing.assert_allclose(lm[61:64], lm[[67, 66, 65]], atol=1e-12)  # closed mouth


def test_named_expressions_move_their_landmarks_only() -> None:
    base = _lmk()

    def delta(name: str, coeff: float) -> np.ndarray:
        return _lmk(expr={EXPR[name]: coeff}) - base

    brows, eyes, mouth, contour = (
        np.arange(17, 27),
        np.arange(36, 48),
        np.arange(48, 68),
        np.arange(0, 17),
    )
    d = delta("smile", 2.5)
    assert d[[48, 54], 1].min() > 4 * MM and d[54, 0] > 2 * MM and d[48, 0] < -2 * MM
    assert np.abs(d[brows]).max() < 0.1 * MM and np.abs(d[eyes]).max() < 0.5 * MM
    for side, corner, other in (("smile_left", 54, 48), ("smile_right", 48, 54)):
        d = delta(side, 2.5)
        assert d[corner, 1] > 4 * MM and abs(d[other, 1]) < 0.5 * MM

    d = delta("brow_raise", 2.5)
    assert d[brows, 1].min() > 3 * MM
    assert np.abs(d[np.r_[mouth, contour]]).max() < 0.1 * MM and np.abs(d[eyes]).max() < 1 * MM

    d = delta("brow_lower", 2.5)
    assert d[[21, 22], 1].max() < -3 * MM and d[21, 0] > 1 * MM and d[22, 0] < -1 * MM
    assert np.abs(d[np.r_[mouth, contour]]).max() < 0.1 * MM

    upper, lower = [37, 38, 43, 44], [41, 40, 47, 46]
    gap0 = base[upper, 1] - base[lower, 1]
    closed = _lmk(expr={EXPR["blink"]: BLINK_CLOSED_COEFF})
    half = _lmk(expr={EXPR["blink"]: 0.5 * BLINK_CLOSED_COEFF})
    assert np.all(gap0 > 7 * MM)
    assert np.abs(closed[upper, 1] - closed[lower, 1]).max() < 0.8 * MM
    np.testing.assert_allclose(half[upper, 1] - half[lower, 1], 0.5 * gap0, atol=1 * MM)
    d = closed - base
    assert np.abs(d[np.r_[mouth, contour, 27, 28, 29, 30, 31, 32, 33, 34, 35]]).max() < 0.1 * MM
    assert np.abs(d[lower]).max() < 0.5 * MM  # the upper lid comes down to the lower one

    d = delta("lips_part", 2.5)
    assert d[[61, 62, 63], 1].min() > 1 * MM and d[[65, 66, 67], 1].max() < -2 * MM
    assert np.abs(d[np.r_[contour, brows, eyes]]).max() < 0.1 * MM

    d = delta("pucker", 2.5)
    assert d[48, 0] > 2 * MM and d[54, 0] < -2 * MM and d[51, 2] > 2 * MM

    # Every named component: strong but plausible at 3, eyeballs never move.
    arrays, _, _ = _head()
    eyeballs = arrays.weights[:, 3:].sum(1) > 0
    for name, k in EXPR.items():
        move = np.linalg.norm(_lmk(expr={k: 3.0}) - base, axis=1).max()
        assert 2 * MM < move < 13 * MM, (name, move)
    assert np.all(arrays.shapedirs[eyeballs, :, EXPR_OFFSET:] == 0)
    # Random expression components are small local bumps with decaying magnitude.
    rand = np.linalg.norm(arrays.shapedirs[~eyeballs, :, EXPR_OFFSET + len(EXPR) :], axis=1)
    assert rand.max() < 2 * MM and rand[:, :10].max() > rand[:, -10:].max()
    assert np.median((rand > 0.1 * rand.max(0)).mean(0)) < 0.15  # local: few vertices move


def test_positive_jaw_rotation_opens_the_mouth_and_moves_only_the_jaw() -> None:
    assert JAW_OPEN_SIGN == 1.0
    arrays, _, _ = _head()
    base, base_v = _lmk(), _verts()
    opened = _lmk(pose={6: 0.3})  # jaw: pose[6:9], +x rotation
    assert opened[62, 1] - opened[66, 1] > 12 * MM  # inner-lip gap
    assert opened[51, 1] - opened[57, 1] > base[51, 1] - base[57, 1] + 12 * MM
    assert opened[8, 1] < base[8, 1] - 8 * MM  # chin down
    still = np.r_[np.arange(0, 3), np.arange(14, 17), np.arange(17, 54), np.arange(60, 65)]
    np.testing.assert_allclose(opened[still], base[still], atol=1e-9)
    closing = _lmk(pose={6: -0.05})
    assert closing[62, 1] < closing[66, 1]  # the other sign pushes the lips through each other

    verts = _verts(pose={6: 0.3})
    jaw_w = arrays.weights[:, 2]
    moved = np.linalg.norm(verts - base_v, axis=1)
    assert moved[jaw_w == 0].max() < 1e-12
    assert moved[jaw_w > 0.5].min() > 1 * MM
    # The slit: the lower-lip copies of the mouth line leave the upper ones.
    on_line = (np.abs(arrays.v_template[:, 1] - base[62, 1]) < 1e-9) & (
        np.abs(arrays.v_template[:, 0]) < 0.02
    )
    lower_copy = np.flatnonzero(on_line & (jaw_w > 0.9))
    assert len(lower_copy) >= 5
    upper_copy = [
        np.flatnonzero(np.all(arrays.v_template == arrays.v_template[i], axis=1) & (jaw_w == 0))[0]
        for i in lower_copy
    ]
    assert moved[upper_copy].max() == 0


@pytest.mark.parametrize("yaw_deg", [-35.0, -20.0, 20.0, 35.0])
@pytest.mark.parametrize("joint", [0, 1])  # global or neck rotation
def test_contour_slides_onto_the_silhouette_when_the_head_turns(yaw_deg: float, joint: int) -> None:
    arrays, _, _ = _head()
    pose = {3 * joint + 1: float(np.radians(yaw_deg))}
    lm = _lmk(pose=pose)
    verts = _verts(pose=pose)
    faces = _skin_faces(arrays)
    far = np.arange(9, 17) if yaw_deg > 0 else np.arange(0, 8)
    near = np.arange(0, 6) if yaw_deg > 0 else np.arange(11, 17)
    sign = np.sign(yaw_deg)

    def outline_x(y: float) -> tuple[float, float]:
        """Extreme projected x of the mesh's cross-section at height y."""
        pts = []
        for a, b in ((0, 1), (1, 2), (2, 0)):
            pa, pb = verts[faces[:, a]], verts[faces[:, b]]
            hit = (pa[:, 1] - y) * (pb[:, 1] - y) < 0
            t = (y - pa[hit, 1]) / (pb[hit, 1] - pa[hit, 1])
            pts.append(pa[hit, 0] + t * (pb[hit, 0] - pa[hit, 0]))
        xs = np.concatenate(pts)
        return float(xs.min()), float(xs.max())

    for k in far:
        lo, hi = outline_x(lm[k, 1])
        edge = hi if sign > 0 else lo
        assert abs(lm[k, 0] - edge) < 2 * MM, (k, lm[k, 0], edge)
    for k in near:
        lo, hi = outline_x(lm[k, 1])
        edge = lo if sign > 0 else hi
        assert (lm[k, 0] - edge) * sign > 3 * MM, (k, lm[k, 0], edge)
    # The 3D (full) landmarks do not slide: far-side contour points end up inside the outline.
    lm3 = _lmk("3d", pose=pose)
    k = far[len(far) // 2]
    lo, hi = outline_x(lm3[k, 1])
    assert ((hi - lm3[k, 0]) if sign > 0 else (lm3[k, 0] - lo)) > 3 * MM


def test_dynamic_contour_is_mirror_symmetric_in_yaw() -> None:
    arrays, emb, _ = _head()
    v, f = arrays.v_template, arrays.faces

    def contour(b: int) -> np.ndarray:
        return np.einsum("lk,lkd->ld", emb.dynamic_bary[b], v[f[emb.dynamic_faces[b]]])

    np.testing.assert_allclose(
        contour(0),
        np.einsum("lk,lkd->ld", emb.full_bary[:17], v[f[emb.full_faces[:17]]]),
        atol=1e-12,
    )
    for yaw in (5, 20, 39):
        plus, minus = contour(yaw), contour(39 + yaw)
        np.testing.assert_allclose(plus[::-1] * [-1, 1, 1], minus, atol=0.3 * MM)


# --------------------------------------------------------------------------- identity


def test_identity_components_are_smooth_and_move_the_joints() -> None:
    arrays, _, _ = _head()
    base = _lmk()
    joints0 = arrays.j_regressor @ arrays.v_template
    for name, k in IDENT.items():
        d = np.linalg.norm(_lmk(shape={k: 1.0}) - base, axis=1)
        assert 0.3 * MM < d.max() < 6 * MM, (name, d.max())
    # Smooth along the jaw: neighbouring contour points move alike.
    for k in (IDENT["jaw_width"], IDENT["face_length"], 20, 120):
        d = _lmk(shape={k: 2.0}) - base
        assert (
            np.linalg.norm(np.diff(d[:17], axis=0), axis=1).max() < 0.5 * np.abs(d).max() + 0.2 * MM
        )
    # Random components: decaying spread, still within a centimetre at 3 sigma.
    rms = [np.sqrt(np.mean((_lmk(shape={k: 1.0}) - base) ** 2)) for k in (12, 13, 250, 299)]
    assert min(rms[:2]) > max(rms[2:])
    assert np.linalg.norm(_lmk(shape={12: 3.0}) - base, axis=1).max() < 10 * MM

    def joints(k: int, c: float) -> np.ndarray:
        dirs = arrays.shapedirs[..., k]
        return arrays.j_regressor @ (arrays.v_template + c * dirs)

    spaced = joints(IDENT["eye_spacing"], 2.0)
    assert (spaced[3, 0] - spaced[4, 0]) - (joints0[3, 0] - joints0[4, 0]) > 4 * MM
    bigger = joints(IDENT["head_size"], 2.0)
    assert np.linalg.norm(bigger - joints0, axis=1)[1:].min() > 1 * MM
    assert bigger[3, 0] - bigger[4, 0] > joints0[3, 0] - joints0[4, 0]
