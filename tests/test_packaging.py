"""Installation facts the pipeline relies on."""

import dlib
import numpy as np

import facedyn
from facedyn.face.models import dlib_model_path


def test_version_is_installed_metadata():
    assert facedyn.__version__ != "0+unknown"


def test_dlib_68_point_model_is_found_without_importing_face_recognition_models():
    path = dlib_model_path()
    assert path.name == "shape_predictor_68_face_landmarks.dat"
    predictor = dlib.shape_predictor(str(path))
    shape = predictor(np.zeros((40, 40, 3), np.uint8), dlib.rectangle(5, 5, 35, 35))
    assert shape.num_parts == 68


def test_device_auto_falls_back_to_cpu_and_cuda_request_is_explained(monkeypatch):
    import pytest
    import torch

    from facedyn.runtime import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(RuntimeError, match="no CUDA GPU is visible"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
