"""Builders for FLAME-format test files: random real-sized models pickled the way the
official files are (chumpy objects, sparse J_regressor), without chumpy installed.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import scipy.sparse as sp

FLAME_V, FLAME_F = 5023, 9976


def random_flame_dict(
    seed: int = 0, n_v: int = FLAME_V, n_f: int = FLAME_F, n_dirs: int = 400
) -> dict[str, object]:
    """A random model with FLAME's keys, shapes and dtypes (float64, csc J_regressor)."""
    rng = np.random.default_rng(seed)
    v_template = rng.normal(scale=0.05, size=(n_v, 3))
    faces = np.stack([rng.choice(n_v, 3, replace=False) for _ in range(n_f)]).astype(np.uint32)
    shapedirs = rng.normal(scale=1e-3, size=(n_v, 3, n_dirs))
    # Skinning: every vertex on root+neck, a third also on the jaw, a few on the eyes.
    weights = np.zeros((n_v, 5))
    weights[:, 0] = rng.uniform(0.1, 1, n_v)
    weights[:, 1] = rng.uniform(0.1, 1, n_v)
    jaw = rng.random(n_v) < 0.33
    weights[jaw, 2] = rng.uniform(0.5, 2, jaw.sum())
    eyes = np.flatnonzero(~jaw)[:40]
    weights[eyes[:20], 3] = 5.0
    weights[eyes[20:], 4] = 5.0
    weights /= weights.sum(1, keepdims=True)
    posedirs = rng.normal(scale=1e-3, size=(n_v, 3, 36))
    posedirs[~jaw, :, 9:18] = 0.0  # jaw correctives only where the jaw skins
    j_reg = np.zeros((5, n_v))
    for j in range(5):
        support = rng.choice(n_v, 30, replace=False)
        j_reg[j, support] = rng.uniform(0.1, 1, 30)
    j_reg /= j_reg.sum(1, keepdims=True)
    kintree = np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.uint32)
    return {
        "v_template": v_template,
        "f": faces,
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": sp.csc_matrix(j_reg),
        "weights": weights,
        "kintree_table": kintree,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


@contextlib.contextmanager
def fake_chumpy() -> Iterator[tuple[type, type]]:
    """Temporarily install a throwaway ``chumpy`` package with ``Ch`` and ``Select`` so
    objects pickle under chumpy's class paths; removed again on exit."""
    names = ("chumpy", "chumpy.ch", "chumpy.reordering")
    saved = {n: sys.modules.get(n) for n in names}
    pkg, ch_mod, reo_mod = (types.ModuleType(n) for n in names)

    class Ch:
        def __init__(self, x: np.ndarray) -> None:
            self.x = x

        def __getstate__(self) -> dict[str, object]:
            return {"x": self.x, "_dirty_vars": set(), "_itr": None}

    class Select:
        def __init__(self, a: object, idxs: np.ndarray, preferred_shape: tuple[int, ...]) -> None:
            self.a, self.idxs, self.preferred_shape = a, idxs, preferred_shape

        def __getstate__(self) -> dict[str, object]:
            return {"a": self.a, "idxs": self.idxs, "preferred_shape": self.preferred_shape}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    Select.__module__, Select.__qualname__ = "chumpy.reordering", "Select"
    ch_mod.Ch, reo_mod.Select = Ch, Select
    pkg.ch, pkg.reordering = ch_mod, reo_mod
    sys.modules.update(zip(names, (pkg, ch_mod, reo_mod), strict=True))
    try:
        yield Ch, Select
    finally:
        for n, mod in saved.items():
            if mod is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = mod


def write_chumpy_pickle(path: Path, model: dict[str, object], seed: int = 0) -> Path:
    """Pickle ``model`` as the official files are: shapedirs and posedirs as ``Ch``,
    v_template as a ``Select`` over a permuted ``Ch``; protocol 2."""
    rng = np.random.default_rng(seed)
    with fake_chumpy() as (Ch, Select):
        out = dict(model)
        out["shapedirs"] = Ch(model["shapedirs"])
        out["posedirs"] = Ch(model["posedirs"])
        vt = np.asarray(model["v_template"])
        perm = rng.permutation(vt.size)
        stored = np.empty(vt.size)
        stored[perm] = vt.ravel()  # so that stored[perm] == vt.ravel()
        out["v_template"] = Select(Ch(stored), perm, vt.shape)
        path.write_bytes(pickle.dumps(out, protocol=2))
    assert "chumpy" not in sys.modules
    return path


def random_embedding_dict(n_faces: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A random DECA-format landmark-embedding dict (numpy arrays only)."""
    rng = np.random.default_rng(seed)

    def bary(*shape: int) -> np.ndarray:
        b = rng.uniform(0.05, 1, size=(*shape, 3))
        return b / b.sum(-1, keepdims=True)

    return {
        "static_lmk_faces_idx": rng.integers(0, n_faces, 51),
        "static_lmk_bary_coords": bary(51),
        "dynamic_lmk_faces_idx": rng.integers(0, n_faces, (79, 17)),
        "dynamic_lmk_bary_coords": bary(79, 17),
        "full_lmk_faces_idx": rng.integers(0, n_faces, (1, 68)),
        "full_lmk_bary_coords": bary(1, 68),
    }


#: Head-model files that cannot be used: (case of :func:`broken_flame_files`, the config key
#: the check names, a part of its message). ``too_many_components`` asks for 120 expression
#: components of a model with 100.
BROKEN_FLAME_CASES = [
    ("missing_key", "flame.model", "missing key(s) ['shapedirs']"),
    ("wrong_shape", "flame.model", "'weights' must have shape (60, 5)"),
    ("too_many_components", "flame.n_expr", "set flame.n_expr to at most 100"),
    ("embedding_empty", "flame.landmark_embedding", "missing key(s)"),
    (
        "embedding_wrong_shape",
        "flame.landmark_embedding",
        "'static_lmk_faces_idx' must have shape (51,)",
    ),
]


def broken_flame_files(folder: Path, case: str) -> tuple[Path, Path]:
    """A small FLAME model and landmark embedding (60 vertices, 40 faces) written to
    ``folder``, broken as ``case`` of :data:`BROKEN_FLAME_CASES` says (any other case:
    usable files)."""
    model = random_flame_dict(seed=1, n_v=60, n_f=40)
    embedding = random_embedding_dict(40)
    if case == "missing_key":
        del model["shapedirs"]
    elif case == "wrong_shape":
        model["weights"] = np.zeros((60, 4))
    elif case == "embedding_empty":
        embedding = {}
    elif case == "embedding_wrong_shape":
        embedding["static_lmk_faces_idx"] = embedding["static_lmk_faces_idx"][:50]
    model_path, emb_path = folder / "generic_model.pkl", folder / "landmark_embedding.npy"
    model_path.write_bytes(pickle.dumps(model, protocol=2))
    np.save(emb_path, np.array(embedding, dtype=object), allow_pickle=True)
    return model_path, emb_path
