"""Locating detector/landmark model files that ship inside installed packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DLIB_SHAPE_PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"


def dlib_model_path(filename: str = DLIB_SHAPE_PREDICTOR_68) -> Path:
    """Path of a dlib model file from the ``face_recognition_models`` package.

    The package is located with ``importlib`` instead of being imported: its
    ``__init__`` imports ``pkg_resources``, which recent setuptools no longer provides.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "package face_recognition_models is not installed; `pip install face_recognition_models` "
            "(it ships dlib's 68-point landmark model)"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "models" / filename
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{filename} not found in face_recognition_models ({list(spec.submodule_search_locations)}); "
        "reinstall it with `pip install --force-reinstall face_recognition_models`"
    )
