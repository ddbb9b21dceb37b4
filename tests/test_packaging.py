"""Installation facts the pipeline relies on."""

import re
import tomllib
from pathlib import Path

import dlib
import numpy as np
import yaml
from packaging.requirements import Requirement

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


def _pins(lines: list[str]) -> dict[str, str]:
    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    return {
        norm(r.name): str(r.specifier)[2:]
        for r in map(Requirement, lines)
        if str(r.specifier).startswith("==")
    }


def test_constraints_pin_every_dependency_within_its_range_and_the_conda_env_agrees():
    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    lines = [
        line.split("#")[0].strip() for line in (root / "constraints.txt").read_text().splitlines()
    ]
    pins = _pins([line for line in lines if line])
    required = [Requirement(r) for r in project["dependencies"]]
    required += [
        Requirement(r)
        for extra in project["optional-dependencies"].values()
        for r in extra
        if not r.startswith("facedyn")
    ]
    for req in required:
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        assert key in pins, f"constraints.txt does not pin {req.name}"
        assert req.specifier.contains(pins[key], prereleases=True), (req, pins[key])
    env = yaml.safe_load((root / "envs" / "facedyn.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = _pins(pip)
    assert len(conda_pins) == len(pip), "every pip package of envs/facedyn.yaml is pinned"
    for name, version in conda_pins.items():
        assert pins.get(name) == version, f"envs/facedyn.yaml pins {name}=={version}"
    readme = (root / "README.md").read_text()
    assert readme.count("pip install -c constraints.txt -e") == 2


def test_provenance_records_the_library_versions():
    from facedyn.runtime import provenance

    libraries = provenance()["libraries"]
    assert libraries["torch"].split("+")[0] == __import__("torch").__version__.split("+")[0]
    assert libraries["numpy"] == np.__version__
