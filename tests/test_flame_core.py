"""FLAME loading (chumpy-free), LBS correctness against an independent implementation,
linearity, skinning locality, landmark fast path, and clear errors on bad files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from flame_factory import (
    random_embedding_dict,
    random_flame_dict,
    write_chumpy_pickle,
)
from scipy.spatial.transform import Rotation

from facedyn.flame import FLAME, FlameModelError, load_flame, load_flame_arrays
from facedyn.flame.io import flame_dict, validate_flame_arrays
from facedyn.flame.landmarks import embedding_from_dict, load_landmark_embedding, yaw_bins


@pytest.fixture(scope="module")
def real_sized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A FLAME-sized random model pickled with chumpy objects and sparse J_regressor."""
    model = random_flame_dict(seed=1)
    path = tmp_path_factory.mktemp("flame") / "generic_model.pkl"
    write_chumpy_pickle(path, model)
    return path, model


def reference_lbs(model: dict, shape: np.ndarray, expr: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Independent float64 LBS: scipy rotations, explicit per-joint world matrices."""
    vt = np.asarray(model["v_template"])
    dirs = np.asarray(model["shapedirs"])
    j_reg = model["J_regressor"].toarray()
    weights, posedirs = np.asarray(model["weights"]), np.asarray(model["posedirs"])
    parents = [-1, 0, 1, 1, 1]
    v = vt + dirs[:, :, : len(shape)] @ shape + dirs[:, :, 300 : 300 + len(expr)] @ expr
    joints = j_reg @ v
    rots = Rotation.from_rotvec(pose.reshape(5, 3)).as_matrix()
    feat = np.concatenate([(r - np.eye(3)).ravel() for r in rots[1:]])
    v = v + np.tensordot(posedirs, feat, axes=([2], [0]))
    world = []
    for j in range(5):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        local[:3, 3] = joints[j] - (joints[parents[j]] if parents[j] >= 0 else 0)
        world.append(local if parents[j] < 0 else world[parents[j]] @ local)
    out = np.zeros_like(v)
    for j in range(5):
        g = world[j]
        moved = (v - joints[j]) @ g[:3, :3].T + g[:3, 3]
        out += weights[:, j : j + 1] * moved
    return out


def test_real_sized_chumpy_model_matches_independent_lbs(real_sized):
    path, model = real_sized
    flame = load_flame(path, n_shape=300, n_expr=100)
    assert flame.v_template.shape == (5023, 3)
    rng = np.random.default_rng(7)
    for _ in range(3):
        shape, expr = rng.normal(size=300), rng.normal(size=100)
        pose = rng.normal(scale=0.3, size=15)
        ref = reference_lbs(model, shape, expr, pose)
        got = flame(
            torch.tensor(shape[None], dtype=torch.float32),
            torch.tensor(expr[None], dtype=torch.float32),
            torch.tensor(pose[None], dtype=torch.float32),
        )[0].numpy()
        rel = np.abs(got - ref).max() / np.abs(ref).max()
        assert rel < 1e-5, rel


def test_chumpy_select_and_sparse_are_converted(real_sized):
    path, model = real_sized
    arrays = load_flame_arrays(path)
    np.testing.assert_array_equal(arrays.v_template, model["v_template"])
    np.testing.assert_array_equal(arrays.j_regressor, model["J_regressor"].toarray())
    assert arrays.parents.tolist() == [-1, 0, 1, 1, 1]
    assert len(arrays.sha256) == 64


def test_old_scipy_and_numpy_module_paths(tmp_path):
    """Pickles from old environments name scipy.sparse.csc / numpy.core paths."""
    model = random_flame_dict(seed=2, n_v=50, n_f=60)
    data = pickle.dumps(model, protocol=2)
    mod = sp.csc_matrix.__module__.encode()
    assert mod in data
    data = data.replace(mod, b"scipy.sparse.csc")
    np_mod = np.ndarray.__reduce__(np.zeros(1))[0].__module__.encode()  # numpy._core.multiarray
    data = data.replace(np_mod, b"numpy.core.multiarray")
    path = tmp_path / "old.pkl"
    path.write_bytes(data)
    arrays = load_flame_arrays(path)
    np.testing.assert_allclose(arrays.j_regressor, model["J_regressor"].toarray())


@pytest.fixture(scope="module")
def small_flame() -> FLAME:
    model = random_flame_dict(seed=3, n_v=400, n_f=700)
    arrays = validate_flame_arrays(model)
    emb = embedding_from_dict(random_embedding_dict(700, seed=3))
    return FLAME(arrays, n_shape=20, n_expr=10, embedding=emb, dtype=torch.float64)


def test_zero_parameters_give_template(small_flame):
    verts = small_flame()
    torch.testing.assert_close(verts[0], small_flame.v_template, rtol=0, atol=1e-12)


def test_shape_and_expression_are_linear(small_flame):
    g = torch.Generator().manual_seed(0)
    s1, s2 = torch.randn(2, 1, 20, generator=g, dtype=torch.float64)
    e1, e2 = torch.randn(2, 1, 10, generator=g, dtype=torch.float64)
    t = small_flame.v_template
    d1 = small_flame(s1, e1) - t
    d2 = small_flame(s2, e2) - t
    torch.testing.assert_close(small_flame(s1 + s2, e1 + e2) - t, d1 + d2)
    torch.testing.assert_close(small_flame(2.5 * s1, 2.5 * e1) - t, 2.5 * d1)


def test_jaw_rotation_moves_only_jaw_skinned_vertices(small_flame):
    pose = torch.zeros(1, 15, dtype=torch.float64)
    pose[0, 6] = 0.3  # jaw about x
    moved = (small_flame(pose=pose) - small_flame())[0].norm(dim=1)
    jaw_weight = small_flame.weights[:, 2]
    assert torch.all(moved[jaw_weight == 0] < 1e-12)
    assert torch.all(moved[jaw_weight > 0.2] > 1e-6)


def test_fast_path_equals_full_path(small_flame):
    fast = small_flame.landmark_model()
    assert fast.n_vertices < len(small_flame.v_template)
    g = torch.Generator().manual_seed(1)
    b = 16
    shape = torch.randn(b, 20, generator=g, dtype=torch.float64)
    expr = torch.randn(b, 10, generator=g, dtype=torch.float64)
    pose = 0.2 * torch.randn(b, 15, generator=g, dtype=torch.float64)
    pose[:, 1] = torch.linspace(-1.2, 1.2, b)  # sweep yaw through all contour bins
    for kind in ("2d", "3d"):
        full = small_flame.landmarks(shape, expr, pose, kind=kind)
        torch.testing.assert_close(fast(shape, expr, pose, kind=kind), full, rtol=0, atol=1e-12)


def test_yaw_bins_follow_deca_convention():
    yaw = torch.tensor([0.0, 10.0, 39.0, 55.0, -1.0, -10.0, -39.0, -70.0])
    assert yaw_bins(yaw).tolist() == [0, 10, 39, 39, 40, 49, 78, 78]
    assert yaw_bins(-yaw, yaw_sign=-1).tolist() == [0, 10, 39, 39, 40, 49, 78, 78]


def test_float32_and_device_agnostic(small_flame):
    flame32 = small_flame.to(torch.float32)
    verts = flame32(pose=torch.zeros(2, 15))
    assert verts.dtype == torch.float32 and verts.shape == (2, 400, 3)
    if torch.cuda.is_available():  # exercised on GPU machines only
        assert flame32.to("cuda")(pose=torch.zeros(2, 15, device="cuda")).is_cuda
    small_flame.to(torch.float64)


# --------------------------------------------------------------------------- bad files


def _write(tmp_path: Path, obj: object) -> Path:
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


def test_missing_file_names_path_and_fix(tmp_path):
    with pytest.raises(FlameModelError, match=r"not found.*flame\.model"):
        load_flame(tmp_path / "nope.pkl")


def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.pkl"
    path.write_bytes(b"\x00\x01 not a pickle")
    with pytest.raises(FlameModelError, match="not a readable FLAME pickle"):
        load_flame(path)


def test_not_a_dict(tmp_path):
    with pytest.raises(FlameModelError, match="expected a dict"):
        load_flame(_write(tmp_path, [1, 2, 3]))


@pytest.mark.parametrize("key", ["shapedirs", "J_regressor", "kintree_table"])
def test_missing_key_is_named(tmp_path, key):
    model = random_flame_dict(seed=4, n_v=30, n_f=20)
    del model[key]
    with pytest.raises(FlameModelError, match=f"missing key.*{key}"):
        load_flame(_write(tmp_path, model), n_shape=10, n_expr=10)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("v_template", np.zeros((30, 2))),
        ("shapedirs", np.zeros((29, 3, 400))),
        ("posedirs", np.zeros((30, 3, 35))),
        ("weights", np.zeros((30, 4))),
        ("J_regressor", np.zeros((4, 30))),
        ("f", np.full((5, 3), 99)),
    ],
)
def test_wrong_shape_is_named(tmp_path, key, value):
    model = random_flame_dict(seed=5, n_v=30, n_f=20)
    model[key] = value
    with pytest.raises(FlameModelError, match=f"'{key}'"):
        load_flame(_write(tmp_path, model), n_shape=10, n_expr=10)


def test_nan_values_rejected(tmp_path):
    model = random_flame_dict(seed=6, n_v=30, n_f=20)
    model["weights"][0, 0] = np.nan
    with pytest.raises(FlameModelError, match="'weights' contains NaN"):
        load_flame(_write(tmp_path, model), n_shape=10, n_expr=10)


def test_too_many_components(tmp_path):
    model = random_flame_dict(seed=7, n_v=30, n_f=20, n_dirs=350)
    path = _write(tmp_path, model)
    with pytest.raises(FlameModelError, match=r"n_expr=60 outside 0\.\.50"):
        load_flame(path, n_shape=10, n_expr=60)


def test_unknown_chumpy_object_is_explained(tmp_path):
    from flame_factory import fake_chumpy

    model = random_flame_dict(seed=8, n_v=30, n_f=20)
    with fake_chumpy() as (ch_cls, _):
        weird = ch_cls(None)
        del weird.x
        ch_cls.__getstate__ = lambda self: {"something": 1}
        model["shapedirs"] = weird
        path = _write(tmp_path, model)
    with pytest.raises(FlameModelError, match="unsupported chumpy object"):
        load_flame(path)


def test_flame_dict_round_trip(tmp_path):
    model = random_flame_dict(seed=9, n_v=40, n_f=30)
    arrays = validate_flame_arrays(model)
    again = validate_flame_arrays(flame_dict(arrays))
    for field in ("v_template", "faces", "shapedirs", "posedirs", "j_regressor", "weights"):
        np.testing.assert_array_equal(getattr(arrays, field), getattr(again, field))


# --------------------------------------------------------------------------- embeddings


def test_embedding_round_trip_with_torch_tensors(tmp_path):
    from facedyn.flame.landmarks import save_landmark_embedding

    emb = embedding_from_dict(random_embedding_dict(100, seed=1))
    path = save_landmark_embedding(tmp_path / "landmark_embedding.npy", emb)
    raw = np.load(path, allow_pickle=True).item()
    assert isinstance(raw["dynamic_lmk_faces_idx"], torch.Tensor)  # DECA's layout
    back = load_landmark_embedding(path)
    np.testing.assert_array_equal(back.dynamic_faces, emb.dynamic_faces)
    np.testing.assert_allclose(back.full_bary, emb.full_bary)


def test_embedding_errors(tmp_path):
    raw = random_embedding_dict(100)
    raw["dynamic_lmk_faces_idx"] = raw["dynamic_lmk_faces_idx"][:, :16]
    with pytest.raises(FlameModelError, match=r"dynamic_lmk_faces_idx.*\(79, 17\)"):
        embedding_from_dict(raw)
    raw = random_embedding_dict(100)
    del raw["static_lmk_bary_coords"]
    with pytest.raises(FlameModelError, match="missing key"):
        embedding_from_dict(raw)
    empty = tmp_path / "empty.npy"
    np.save(empty, np.array({}, dtype=object), allow_pickle=True)
    with pytest.raises(FlameModelError, match="missing key"):
        load_landmark_embedding(empty)
    with pytest.raises(FlameModelError, match="not found"):
        load_landmark_embedding(tmp_path / "nope.npy")
    emb = embedding_from_dict(random_embedding_dict(100))
    with pytest.raises(FlameModelError, match="another mesh"):
        emb.check_faces(50)
