"""Reading and writing FLAME model files (``generic_model.pkl``, ``flame2023.pkl``).

The official files are Python-2-era pickles in which some arrays are *chumpy*
objects and ``J_regressor`` is a scipy sparse matrix.  chumpy itself is
unmaintained and breaks on numpy >= 1.24, so this module never imports it: a
custom :class:`pickle.Unpickler` substitutes small placeholder classes for every
``chumpy.*`` and ``scipy.sparse.*`` class, keeps their pickled state, and turns
that state into plain numpy arrays afterwards.  Old module paths
(``numpy.core`` vs ``numpy._core``) are remapped in both directions.

The result is validated key by key (:func:`validate_flame_arrays`) so that a
truncated or foreign file fails with a message that names the key, the expected
shape and what to do, instead of an obscure broadcasting error deep in LBS.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from facedyn.atomic import atomic_write_bytes

N_JOINTS = 5
#: FLAME stores 300 identity components before the expression components.
EXPR_OFFSET = 300
#: kintree_table stores the root's parent as 2**32 - 1.
ROOT_PARENT_SENTINEL = 2**32 - 1
REQUIRED_KEYS = (
    "v_template",
    "f",
    "shapedirs",
    "posedirs",
    "J_regressor",
    "weights",
    "kintree_table",
)


class FlameModelError(ValueError):
    """A FLAME model file is missing, unreadable or malformed."""


@dataclass(frozen=True)
class FlameArrays:
    """Validated FLAME model arrays, float64 as stored, in FLAME's own layout.

    Attributes:
        v_template: (V, 3) template vertices in metres.
        faces: (F, 3) int64 triangle vertex indices.
        shapedirs: (V, 3, S) blendshapes; identity in ``[..., :300]``,
            expression in ``[..., 300:]``.
        posedirs: (V, 3, 36) pose-corrective blendshapes.
        j_regressor: (5, V) dense joint regressor.
        weights: (V, 5) skinning weights.
        parents: (5,) int64 parent index of each joint, -1 for the root.
        sha256: hex digest of the file the arrays came from ("" if built in memory).
    """

    v_template: np.ndarray
    faces: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    j_regressor: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    sha256: str = ""

    @property
    def n_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def max_shape(self) -> int:
        return min(EXPR_OFFSET, int(self.shapedirs.shape[2]))

    @property
    def max_expr(self) -> int:
        return max(0, int(self.shapedirs.shape[2]) - EXPR_OFFSET)


# --------------------------------------------------------------------------- unpickling


class _Placeholder:
    """Stands in for a class we refuse to import; keeps the pickled state."""

    _module = ""
    _name = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args
        self._state: Any = None

    def __setstate__(self, state: Any) -> None:
        self._state = state

    @classmethod
    def qualname(cls) -> str:
        return f"{cls._module}.{cls._name}"


class _ChumpyPlaceholder(_Placeholder):
    pass


class _SparsePlaceholder(_Placeholder):
    pass


def _placeholder(base: type[_Placeholder], module: str, name: str) -> type[_Placeholder]:
    return type(name, (base,), {"_module": module, "_name": name})


class _FlameUnpickler(pickle.Unpickler):
    """Unpickler that never imports chumpy and tolerates moved numpy/scipy paths."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return _placeholder(_ChumpyPlaceholder, module, name)
        if module.startswith("scipy.sparse") and name.endswith(("_matrix", "_array")):
            return _placeholder(_SparsePlaceholder, module, name)
        if module.startswith("numpy.core") or module.startswith("numpy._core"):
            tail = module.split(".", 2)[2] if module.count(".") >= 2 else ""
            for prefix in ("numpy._core", "numpy.core"):
                candidate = f"{prefix}.{tail}" if tail else prefix
                try:
                    return getattr(importlib.import_module(candidate), name)
                except (ImportError, AttributeError):
                    continue
        return super().find_class(module, name)


def _sparse_to_dense(obj: _SparsePlaceholder) -> np.ndarray:
    state = obj._state
    if not isinstance(state, Mapping):
        raise FlameModelError(f"cannot read sparse matrix {obj.qualname()}: unexpected state")
    shape = state.get("_shape", state.get("shape"))
    fmt = obj._name.split("_")[0]
    try:
        if fmt in ("csc", "csr"):
            cls = sp.csc_matrix if fmt == "csc" else sp.csr_matrix
            mat = cls((state["data"], state["indices"], state["indptr"]), shape=shape)
        elif fmt == "coo":
            row = state.get("row", state.get("coords", [None])[0])
            col = state.get("col", state.get("coords", [None, None])[1])
            mat = sp.coo_matrix((state["data"], (row, col)), shape=shape)
        else:
            raise KeyError(fmt)
    except (KeyError, TypeError, ValueError) as exc:
        raise FlameModelError(f"cannot rebuild sparse matrix {obj.qualname()}: {exc}") from exc
    return np.asarray(mat.toarray())


def _chumpy_to_array(obj: _ChumpyPlaceholder) -> np.ndarray:
    state = obj._state if isinstance(obj._state, Mapping) else {}
    if "x" in state:  # chumpy.ch.Ch and subclasses keep their value under 'x'
        return np.asarray(_to_plain(state["x"]))
    if {"a", "idxs"} <= set(state):  # chumpy.reordering.Select
        base = np.asarray(_to_plain(state["a"]))
        out = base.ravel()[np.asarray(state["idxs"])]
        shape = state.get("preferred_shape")
        return out.reshape(shape) if shape is not None else out
    raise FlameModelError(
        f"unsupported chumpy object {obj.qualname()} (state keys: {sorted(state)}); "
        "re-save the model with plain numpy arrays (see docs/flame.md)"
    )


def _to_plain(value: Any) -> Any:
    """Recursively replace placeholders with numpy arrays."""
    if isinstance(value, _ChumpyPlaceholder):
        return _chumpy_to_array(value)
    if isinstance(value, _SparsePlaceholder):
        return _sparse_to_dense(value)
    if sp.issparse(value):
        return np.asarray(value.toarray())
    return value


def read_flame_pickle(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Unpickle a FLAME model file into a dict of plain numpy values (no validation)."""
    path = Path(path)
    if not path.is_file():
        raise FlameModelError(
            f"FLAME model file not found: {path}. Download FLAME 2020 or 2023 from "
            "https://flame.is.tue.mpg.de (licence required) and set `flame.model` to the pkl, "
            "or use `flame.model: synthetic` for the procedural stand-in head."
        )
    try:
        with path.open("rb") as fh:
            raw = _FlameUnpickler(fh, encoding="latin1").load()
    except FlameModelError:
        raise
    except Exception as exc:  # pickle raises many unrelated types on corrupt input
        raise FlameModelError(
            f"{path} is not a readable FLAME pickle ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(raw, Mapping):
        raise FlameModelError(f"{path} holds a {type(raw).__name__}, expected a dict of arrays")
    return {str(k): _to_plain(v) for k, v in raw.items()}


# --------------------------------------------------------------------------- validation


def _expect(cond: bool, where: str, key: str, message: str) -> None:
    if not cond:
        raise FlameModelError(f"{where}: key '{key}' {message}")


def validate_flame_arrays(raw: Mapping[str, Any], where: str = "FLAME model") -> FlameArrays:
    """Check keys, shapes and values of a FLAME dict and return typed arrays."""
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise FlameModelError(
            f"{where}: missing key(s) {missing}; a FLAME model needs {list(REQUIRED_KEYS)}. "
            "Is this a FLAME generic_model.pkl / flame2023.pkl?"
        )
    arr = {}
    for key in REQUIRED_KEYS:
        try:
            arr[key] = np.asarray(_to_plain(raw[key]))
        except Exception as exc:
            raise FlameModelError(f"{where}: key '{key}' is not array-like ({exc})") from exc
        _expect(arr[key].dtype != object, where, key, "holds Python objects, not numbers")

    v_template = arr["v_template"].astype(np.float64)
    _expect(
        v_template.ndim == 2 and v_template.shape[1] == 3,
        where,
        "v_template",
        f"must have shape (V, 3), got {v_template.shape}",
    )
    n_v = v_template.shape[0]
    _expect(n_v > 0, where, "v_template", "is empty")

    faces = arr["f"]
    _expect(
        faces.ndim == 2 and faces.shape[1] == 3,
        where,
        "f",
        f"must have shape (F, 3), got {faces.shape}",
    )
    faces = faces.astype(np.int64)
    _expect(
        faces.size == 0 or (faces.min() >= 0 and faces.max() < n_v),
        where,
        "f",
        f"indexes vertices outside 0..{n_v - 1}",
    )

    shapedirs = arr["shapedirs"].astype(np.float64)
    _expect(
        shapedirs.ndim == 3 and shapedirs.shape[:2] == (n_v, 3),
        where,
        "shapedirs",
        f"must have shape ({n_v}, 3, S), got {shapedirs.shape}",
    )

    posedirs = arr["posedirs"].astype(np.float64)
    n_pose = 9 * (N_JOINTS - 1)
    if posedirs.shape == (n_v * 3, n_pose):
        posedirs = posedirs.reshape(n_v, 3, n_pose)
    _expect(
        posedirs.shape == (n_v, 3, n_pose),
        where,
        "posedirs",
        f"must have shape ({n_v}, 3, {n_pose}), got {posedirs.shape}",
    )

    j_reg = arr["J_regressor"].astype(np.float64)
    _expect(
        j_reg.shape == (N_JOINTS, n_v),
        where,
        "J_regressor",
        f"must have shape ({N_JOINTS}, {n_v}), got {j_reg.shape}",
    )

    weights = arr["weights"].astype(np.float64)
    _expect(
        weights.shape == (n_v, N_JOINTS),
        where,
        "weights",
        f"must have shape ({n_v}, {N_JOINTS}), got {weights.shape}",
    )

    kintree = arr["kintree_table"]
    _expect(
        kintree.shape == (2, N_JOINTS),
        where,
        "kintree_table",
        f"must have shape (2, {N_JOINTS}), got {kintree.shape}",
    )
    parents = kintree[0].astype(np.int64)
    parents[(parents == ROOT_PARENT_SENTINEL) | (parents < 0)] = -1
    _expect(
        parents[0] == -1 and all(0 <= p < i for i, p in enumerate(parents[1:], 1)),
        where,
        "kintree_table",
        f"is not a tree rooted at joint 0 (parents {parents.tolist()})",
    )

    for key, value in (
        ("v_template", v_template),
        ("shapedirs", shapedirs),
        ("posedirs", posedirs),
        ("J_regressor", j_reg),
        ("weights", weights),
    ):
        _expect(bool(np.isfinite(value).all()), where, key, "contains NaN or infinite values")

    return FlameArrays(v_template, faces, shapedirs, posedirs, j_reg, weights, parents)


def load_flame_arrays(path: str | os.PathLike[str]) -> FlameArrays:
    """Read and validate a FLAME pkl; records the file's sha256 for provenance."""
    raw = read_flame_pickle(path)
    arrays = validate_flame_arrays(raw, where=str(path))
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return FlameArrays(**{**arrays.__dict__, "sha256": digest})


# --------------------------------------------------------------------------- writing


def flame_dict(arrays: FlameArrays) -> dict[str, Any]:
    """The dict FLAME's pkl holds, in its dtypes: float64 arrays, sparse csc J_regressor,
    uint32 faces and kintree with the root sentinel."""
    kintree = np.stack([arrays.parents, np.arange(N_JOINTS)]).astype(np.int64)
    kintree[0, kintree[0] < 0] = ROOT_PARENT_SENTINEL
    return {
        "v_template": np.ascontiguousarray(arrays.v_template, dtype=np.float64),
        "f": np.ascontiguousarray(arrays.faces, dtype=np.uint32),
        "shapedirs": np.ascontiguousarray(arrays.shapedirs, dtype=np.float64),
        "posedirs": np.ascontiguousarray(arrays.posedirs, dtype=np.float64),
        "J_regressor": sp.csc_matrix(arrays.j_regressor.astype(np.float64)),
        "weights": np.ascontiguousarray(arrays.weights, dtype=np.float64),
        "kintree_table": kintree.astype(np.uint32),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def save_flame_pickle(path: str | os.PathLike[str], arrays: FlameArrays) -> Path:
    """Write ``arrays`` in FLAME's pkl layout (protocol 2, readable by the official loaders
    once chumpy-free; ``shapedirs`` is a plain array rather than a chumpy object)."""
    return atomic_write_bytes(path, pickle.dumps(flame_dict(arrays), protocol=2))
