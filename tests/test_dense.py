"""Dense landmark embeddings: the file format, its checks, and fitting 68 + dense points."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facedyn.flame import load_flame, write_synthetic_flame
from facedyn.flame.camera import focal_from_fov, project
from facedyn.flame.dense import (
    DenseEmbedding,
    load_dense_embedding,
    save_dense_embedding,
    with_dense_points,
)
from facedyn.flame.fit import FitSettings, fit_landmarks
from facedyn.flame.io import FlameModelError
from facedyn.flame.landmarks import barycentric_points


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    return write_synthetic_flame(tmp_path_factory.mktemp("head"), n_shape=10, n_expr=10)


def _dense(n_faces: int, p: int = 40, seed: int = 0) -> DenseEmbedding:
    rng = np.random.default_rng(seed)
    bary = rng.dirichlet(np.ones(3), size=p)
    return DenseEmbedding(
        faces=rng.choice(n_faces, p, replace=False),
        bary=bary,
        landmark_indices=rng.choice(478, p, replace=False),
    )


def test_file_round_trip_and_metrical_tracker_keys(tmp_path):
    emb = _dense(1000)
    path = save_dense_embedding(tmp_path / "mediapipe_landmark_embedding.npz", emb)
    with np.load(path) as raw:
        assert set(raw) == {"lmk_face_idx", "lmk_b_coords", "landmark_indices"}
    back = load_dense_embedding(path)
    for name in ("faces", "bary", "landmark_indices"):
        np.testing.assert_array_equal(getattr(back, name), getattr(emb, name))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: DenseEmbedding(e.faces + 5000, e.bary, e.landmark_indices), "triangles outside"),
        (lambda e: DenseEmbedding(e.faces, e.bary * 2, e.landmark_indices), "barycentric"),
        (lambda e: DenseEmbedding(e.faces, e.bary, e.landmark_indices + 478), "landmark_indices"),
        (lambda e: DenseEmbedding(e.faces, e.bary, np.zeros_like(e.landmark_indices)), "repeats"),
        (lambda e: DenseEmbedding(e.faces, e.bary[:, :2], e.landmark_indices), "must be"),
    ],
)
def test_bad_embeddings_are_named(change, message):
    with pytest.raises(FlameModelError, match=message):
        change(_dense(1000)).check(1000, 478)


def test_missing_file_and_keys_say_what_to_use(tmp_path):
    with pytest.raises(FlameModelError, match=r"mediapipe_landmark_embedding\.npz"):
        load_dense_embedding(tmp_path / "none.npz")
    np.savez(tmp_path / "bad.npz", lmk_face_idx=np.zeros(3))
    with pytest.raises(FlameModelError, match="missing keys"):
        load_dense_embedding(tmp_path / "bad.npz")


def test_model_gives_the_68_then_the_dense_points(head):
    plain = load_flame(head["model"], 10, 10, head["landmark_embedding"], dtype=torch.float64)
    dense = _dense(len(plain.faces))
    both = load_flame(
        head["model"],
        10,
        10,
        head["landmark_embedding"],
        dtype=torch.float64,
        dense_embedding=dense,
    )
    rng = np.random.default_rng(1)
    expr = torch.as_tensor(rng.normal(size=(2, 10)))
    pose = torch.zeros(2, 15, dtype=torch.float64)
    pose[:, 1], pose[:, 6] = 0.3, 0.1  # yawed, jaw open: the contour slides, dense points not
    for kind in ("2d", "3d"):
        got = both.landmarks(expression=expr, pose=pose, kind=kind)
        np.testing.assert_allclose(
            got[:, :68], plain.landmarks(expression=expr, pose=pose, kind=kind)
        )
        verts = both(expression=expr, pose=pose)
        expected = barycentric_points(
            verts, both.faces, torch.as_tensor(dense.faces), torch.as_tensor(dense.bary)
        )
        np.testing.assert_allclose(got[:, 68:], expected, atol=1e-12)
        fast = both.landmark_model()(expression=expr, pose=pose, kind=kind)
        np.testing.assert_allclose(fast, got, atol=1e-10)
    assert with_dense_points(plain.embedding, dense).static_faces.shape == (51 + len(dense),)


def test_fit_with_dense_points_recovers_expression_better_under_noise(head):
    """Dense points add evidence: with the same landmark noise, adding dense points brings the
    fitted expression closer to the truth than the 68 alone."""
    flame = load_flame(head["model"], 10, 10, head["landmark_embedding"])
    dense = _dense(len(flame.faces), p=120, seed=3)
    both = load_flame(head["model"], 10, 10, head["landmark_embedding"], dense_embedding=dense)
    fast68, fast_all = flame.landmark_model(), both.landmark_model()
    rng = np.random.default_rng(0)
    n = 60
    t = np.arange(n) / 15.0
    expr = 0.8 * np.sin(
        2 * np.pi * (0.3 + 0.1 * np.arange(10))[None] * t[:, None] + rng.uniform(0, 6, 10)
    )
    pose = np.zeros((n, 15))
    pose[:, 6] = 0.1
    trans = np.tile([0.0, -0.03, -0.55], (n, 1))
    f = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        pts = project(
            fast_all(None, f(expr), f(pose), kind="2d"),
            f(trans),
            focal_from_fov(320, 60.0),
            159.5,
            119.5,
        ).numpy()
    noisy = pts + rng.normal(0, 1.5, pts.shape)
    settings = FitSettings(
        n_shape=10, n_expr=10, iterations=120, rigid_iterations=40, dense_weight=1.0
    )
    frames = np.arange(n)
    err = {}
    for name, model, lmk in (("68", fast68, noisy[:, :68]), ("dense", fast_all, noisy)):
        res = fit_landmarks(lmk, frames, t, 320, 240, model, settings)
        err[name] = float(np.sqrt(((res.expression - expr) ** 2).mean()))
    assert err["dense"] < 0.95 * err["68"], err
    with pytest.raises(ValueError, match="dense"):
        fit_landmarks(noisy[:, :68], frames, t, 320, 240, fast_all, settings)


def test_stage_fits_dense_columns_and_names_a_table_without_them(head, tmp_path):
    import pandas as pd

    from facedyn.face.extract import COLUMNS, dense_columns
    from facedyn.flame.head_model import describe_flame_model
    from facedyn.flame.stage import run_fit
    from facedyn.tables import read_table, write_table

    plain = load_flame(head["model"], 10, 10, head["landmark_embedding"])
    dense = _dense(len(plain.faces), p=30, seed=5)
    dense_path = save_dense_embedding(tmp_path / "dense.npz", dense)
    info = describe_flame_model(
        head["model"],
        head["landmark_embedding"],
        tmp_path / "model.json",
        n_shape=10,
        n_expr=10,
        synthetic=True,
        dense_embedding=dense_path,
    )
    assert info["dense_points"] == 30 and len(info["dense_embedding_sha256"]) == 64
    both = load_flame(head["model"], 10, 10, head["landmark_embedding"], dense_embedding=dense)
    n = 20
    rng = np.random.default_rng(2)
    expr = torch.as_tensor(rng.normal(0, 0.5, (n, 10)), dtype=torch.float32)
    pose = torch.zeros(n, 15)
    trans = torch.tensor([[0.0, -0.03, -0.55]]).repeat(n, 1)
    with torch.no_grad():
        pts = project(
            both.landmark_model()(None, expr, pose), trans, focal_from_fov(320, 60.0), 159.5, 119.5
        ).numpy()
    cols = {
        "frame": np.arange(n),
        "time_s": np.arange(n) / 15,
        "detected": True,
        "tracked": False,
        "score": 1.0,
        "x0": 0.0,
        "y0": 0.0,
        "x1": 1.0,
        "y1": 1.0,
    }
    cols.update({f"lx{k:02d}": pts[:, k, 0] for k in range(68)})
    cols.update({f"ly{k:02d}": pts[:, k, 1] for k in range(68)})
    dense_xy = np.full((n, 2 * 478), np.nan, np.float32)
    dense_xy[:, dense.landmark_indices] = pts[:, 68:, 0]
    dense_xy[:, 478 + dense.landmark_indices] = pts[:, 68:, 1]
    dense_xy[3] = np.nan  # a frame without dense points is not fitted
    table = pd.concat(
        [pd.DataFrame(cols)[COLUMNS], pd.DataFrame(dense_xy, columns=dense_columns(478))], axis=1
    )
    meta = {"session_id": "s", "speaker_id": "p", "width": 320, "height": 240}
    write_table(table, tmp_path / "lmk.parquet", meta)
    fit = {
        "backend": "optimize",
        "device": "cpu",
        "iterations": 40,
        "rigid_iterations": 20,
        "dense_weight": 1.0,
    }
    run_fit(tmp_path / "lmk.parquet", tmp_path / "model.json", tmp_path / "flame.parquet", fit)
    out, stored = read_table(tmp_path / "flame.parquet")
    assert stored["status"] == "ok" and stored["frames_valid"] == n - 1
    assert not out.loc[3, "valid"] and stored["median_nme"] < 0.02
    write_table(pd.DataFrame(cols)[COLUMNS], tmp_path / "lmk68.parquet", meta)
    run_fit(tmp_path / "lmk68.parquet", tmp_path / "model.json", tmp_path / "f68.parquet", fit)
    assert read_table(tmp_path / "f68.parquet")[1]["status"] == "no_dense_landmarks"
