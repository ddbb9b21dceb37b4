"""The insightface landmark backend: mapping insightface faces to Detections, RGB->BGR,
refine without the detector, provider selection and the offline model-pack check.

Everything except the last test uses stand-ins for insightface's FaceAnalysis and its
landmark model (no network, no model files). The last test runs the real models and is
skipped where the model pack is absent."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from insightface.app.common import Face

from facedyn.face.backends import Detection, make_backend
from facedyn.face.insightface_backend import (
    CONFIG_KEYS,
    DEFAULT_MODEL_PACK,
    InsightFaceBackend,
    check_model_pack,
    model_pack_dir,
    select_providers,
)

BUFFALO_L = ("1k3d68.onnx", "2d106det.onnx", "det_10g.onnx", "genderage.onnx", "w600k_r50.onnx")


def _landmarks(offset: float = 0.0) -> np.ndarray:
    """(68, 3) points whose order is recognisable: x rises, y falls with the index."""
    i = np.arange(68, dtype=np.float32)
    return np.column_stack([100 + offset + 1.5 * i, 300 + offset - 0.5 * i, 7.0 + 0 * i])


class FakeSession:
    def __init__(self, providers: list[str]) -> None:
        self.providers = providers

    def get_providers(self) -> list[str]:
        return list(self.providers)


class FakeModel:
    """Stands in for insightface's SCRFD / Landmark model objects."""

    def __init__(self, taskname: str, model_file: str, landmarks: np.ndarray | None = None):
        self.taskname = taskname
        self.model_file = model_file
        self.session = FakeSession(["CPUExecutionProvider"])
        self.landmarks = landmarks
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []

    def get(self, img: np.ndarray, face: Face) -> np.ndarray:
        """Like ``Landmark.get``: reads only ``face.bbox``, stores and returns (68, 3)."""
        self.calls.append((img.copy(), np.array(face.bbox)))
        face[self.taskname] = self.landmarks
        return self.landmarks


class FakeFaceAnalysis:
    """Stands in for ``insightface.app.FaceAnalysis``: records images and prepare() args."""

    def __init__(
        self,
        faces: list[Face] | None = None,
        tasks=("detection", "landmark_3d_68"),
        model_dir: str = "/packs/buffalo_l",
    ) -> None:
        self.faces = faces or []
        self.model_dir = model_dir
        files = {"detection": "det_10g.onnx", "landmark_3d_68": "1k3d68.onnx"}
        self.models = {t: FakeModel(t, f"{model_dir}/{files[t]}", _landmarks(50.0)) for t in tasks}
        self.det_model = self.models.get("detection")
        self.images: list[np.ndarray] = []
        self.prepared: dict | None = None

    def prepare(self, ctx_id: int = 0, det_thresh: float = 0.5, det_size=None) -> None:
        self.prepared = {"ctx_id": ctx_id, "det_thresh": det_thresh, "det_size": det_size}

    def get(self, img: np.ndarray, max_num: int = 0) -> list[Face]:
        self.images.append(img.copy())
        return self.faces


def _face(box, score, landmarks) -> Face:
    return Face(
        bbox=np.asarray(box, np.float32),
        kps=None,
        det_score=np.float32(score),
        landmark_3d_68=landmarks,
    )


@pytest.fixture
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)


@pytest.fixture(autouse=True)
def cpu_only(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["AzureExecutionProvider", "CPUExecutionProvider"],
    )


def _write_pack(folder: Path, names=BUFFALO_L) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"not a real onnx model")
    return folder


# --- detect / refine / describe with stand-ins --------------------------------------------


def test_detect_maps_one_face_and_converts_rgb_to_bgr(rgb):
    lmk = _landmarks()
    app = FakeFaceAnalysis([_face([10.5, 20.25, 40.0, 47.5], 0.87, lmk)])
    backend = InsightFaceBackend(face_analysis=app)
    (det,) = backend.detect(rgb)

    assert isinstance(det, Detection)
    assert det.box.dtype == np.float64 and det.box.shape == (4,)
    np.testing.assert_array_equal(det.box, [10.5, 20.25, 40.0, 47.5])
    assert det.score == pytest.approx(0.87, abs=1e-6) and isinstance(det.score, float)
    assert det.landmarks.dtype == np.float64 and det.landmarks.shape == (68, 2)
    np.testing.assert_array_equal(det.landmarks, lmk[:, :2])  # first two columns, same order
    # insightface got the channel-reversed (BGR) frame, and the caller's frame is untouched
    (seen,) = app.images
    np.testing.assert_array_equal(seen, rgb[:, :, ::-1])
    np.testing.assert_array_equal(seen[..., 0], rgb[..., 2])
    assert seen.flags.c_contiguous


def test_detect_several_faces_keeps_order(rgb):
    faces = [
        _face([0, 0, 10, 10], 0.9, _landmarks(0.0)),
        _face([20, 5, 35, 30], 0.7, _landmarks(10.0)),
        _face([40, 1, 60, 21], 0.6, _landmarks(20.0)),
    ]
    backend = InsightFaceBackend(face_analysis=FakeFaceAnalysis(faces))
    dets = backend.detect(rgb)
    assert [d.score for d in dets] == pytest.approx([0.9, 0.7, 0.6])
    for det, face in zip(dets, faces, strict=True):
        np.testing.assert_array_equal(det.box, face.bbox)
        np.testing.assert_array_equal(det.landmarks, face.landmark_3d_68[:, :2])


def test_detect_no_face_is_empty(rgb):
    assert InsightFaceBackend(face_analysis=FakeFaceAnalysis([])).detect(rgb) == []


def test_detect_rejects_non_rgb():
    backend = InsightFaceBackend(face_analysis=FakeFaceAnalysis([]))
    with pytest.raises(ValueError, match="RGB"):
        backend.detect(np.zeros((8, 8), np.uint8))


def test_refine_uses_the_box_and_the_landmark_model_only(rgb):
    app = FakeFaceAnalysis([_face([0, 0, 5, 5], 0.99, _landmarks())])
    backend = InsightFaceBackend(face_analysis=app)
    box = np.array([12.0, 8.5, 30.0, 40.0])
    det = backend.refine(rgb, box)

    assert app.images == []  # the detector (FaceAnalysis.get) never ran
    lmk_model = app.models["landmark_3d_68"]
    ((img, bbox),) = lmk_model.calls
    np.testing.assert_array_equal(bbox, box)
    np.testing.assert_array_equal(img, rgb[:, :, ::-1])
    np.testing.assert_array_equal(det.box, box)
    assert np.isnan(det.score)
    np.testing.assert_array_equal(det.landmarks, lmk_model.landmarks[:, :2])
    assert det.landmarks.dtype == np.float64


def test_refine_rejects_degenerate_box(rgb):
    backend = InsightFaceBackend(face_analysis=FakeFaceAnalysis())
    with pytest.raises(ValueError, match="box"):
        backend.refine(rgb, np.array([10.0, 10.0, 10.0, 20.0]))


def test_prepare_and_describe(tmp_path):
    app = FakeFaceAnalysis()
    backend = InsightFaceBackend(
        root=str(tmp_path), det_size=320, det_thresh=0.4, face_analysis=app
    )
    assert app.prepared == {"ctx_id": -1, "det_thresh": 0.4, "det_size": (320, 320)}
    info = backend.describe()
    assert info["backend"] == "insightface" == backend.name
    assert info["model_pack"] == DEFAULT_MODEL_PACK
    assert info["root"] == str(tmp_path)
    assert info["detector"] == "det_10g.onnx" and info["model"] == "1k3d68.onnx"
    assert info["onnx_files"] == "det_10g.onnx,1k3d68.onnx"
    assert info["providers"] == "CPUExecutionProvider"
    import insightface

    assert info["insightface_version"] == insightface.__version__
    assert all(isinstance(v, str) for v in info.values())


def test_loaded_pack_without_landmark_model_is_an_error():
    with pytest.raises(RuntimeError, match="landmark_3d_68"):
        InsightFaceBackend(face_analysis=FakeFaceAnalysis(tasks=("detection",)))


# --- providers ------------------------------------------------------------------------------


def test_providers_cpu_only_when_no_cuda():
    assert select_providers() == (["CPUExecutionProvider"], -1)


def test_providers_cuda_when_available(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    assert select_providers() == (["CUDAExecutionProvider", "CPUExecutionProvider"], 0)
    app = FakeFaceAnalysis()
    backend = InsightFaceBackend(face_analysis=app)
    assert backend.ctx_id == 0 and app.prepared["ctx_id"] == 0


def test_providers_explicit():
    assert select_providers(["CPUExecutionProvider"]) == (["CPUExecutionProvider"], -1)
    assert select_providers(["TensorrtExecutionProvider", "CPUExecutionProvider"])[1] == 0
    with pytest.raises(ValueError):
        select_providers([])


# --- the model pack -------------------------------------------------------------------------


def test_missing_pack_message_names_folder_download_and_config_keys(tmp_path):
    expected = tmp_path / "models" / "buffalo_l"
    assert model_pack_dir("buffalo_l", tmp_path) == expected
    with pytest.raises(FileNotFoundError) as err:
        check_model_pack("buffalo_l", tmp_path)
    msg = str(err.value)
    assert str(expected) in msg
    assert "buffalo_l.zip" in msg and "download=True" in msg
    assert "github.com/deepinsight/insightface/releases" in msg
    for key in CONFIG_KEYS:
        assert key in msg
    assert "landmarks.insightface.model_pack" in msg and "landmarks.insightface.root" in msg


def test_default_root_is_insightfaces(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert model_pack_dir("buffalo_s") == tmp_path / ".insightface" / "models" / "buffalo_s"


def test_pack_with_detector_and_3d68_passes(tmp_path):
    folder = _write_pack(tmp_path / "models" / "buffalo_l")
    assert check_model_pack("buffalo_l", tmp_path) == folder
    ante = _write_pack(
        tmp_path / "models" / "antelopev2",
        [
            "1k3d68.onnx",
            "2d106det.onnx",
            "genderage.onnx",
            "glintr100.onnx",
            "scrfd_10g_bnkps.onnx",
        ],
    )
    assert check_model_pack("antelopev2", tmp_path) == ante
    direct = _write_pack(tmp_path / "elsewhere" / "mypack", ["det_500m.onnx", "1k3d68.onnx"])
    assert check_model_pack(str(direct), "/nonexistent/root") == direct


def test_incomplete_packs_fail(tmp_path):
    # buffalo_sc has a detector and a recogniser but no 68-point landmark model
    _write_pack(tmp_path / "models" / "buffalo_sc", ["det_500m.onnx", "w600k_mbf.onnx"])
    with pytest.raises(FileNotFoundError, match="1k3d68") as err:
        check_model_pack("buffalo_sc", tmp_path)
    assert "det_500m.onnx" in str(err.value)  # says what it found
    _write_pack(tmp_path / "models" / "nodet", ["1k3d68.onnx"])
    with pytest.raises(FileNotFoundError, match="detector"):
        check_model_pack("nodet", tmp_path)
    # empty folder (e.g. an interrupted download)
    (tmp_path / "models" / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \.onnx files"):
        check_model_pack("empty", tmp_path)


def test_zip_unpacked_one_level_too_deep_gets_a_hint(tmp_path):
    _write_pack(
        tmp_path / "models" / "antelopev2" / "antelopev2", ["1k3d68.onnx", "scrfd_10g_bnkps.onnx"]
    )
    with pytest.raises(FileNotFoundError, match="one level down"):
        check_model_pack("antelopev2", tmp_path)


def test_check_model_pack_imports_neither_insightface_nor_onnxruntime(tmp_path):
    code = (
        "import sys\n"
        "from facedyn.face.insightface_backend import check_model_pack\n"
        f"try:\n    check_model_pack('buffalo_l', {str(tmp_path)!r})\n"
        "except FileNotFoundError:\n    pass\n"
        "heavy = {'insightface', 'onnxruntime', 'onnx', 'cv2'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_constructor_checks_the_pack_before_loading_anything(tmp_path, monkeypatch):
    import insightface.app

    def boom(*args, **kwargs):
        raise AssertionError("FaceAnalysis must not be constructed for a missing pack")

    monkeypatch.setattr(insightface.app, "FaceAnalysis", boom)
    with pytest.raises(FileNotFoundError, match=r"landmarks\.insightface\.root"):
        InsightFaceBackend(root=str(tmp_path))
    with pytest.raises(FileNotFoundError):
        make_backend("insightface", root=str(tmp_path), model_pack="buffalo_m")


class RecordingFaceAnalysis(FakeFaceAnalysis):
    """Replaces the FaceAnalysis class: records its constructor arguments."""

    created: ClassVar[list[dict]] = []
    on_create: ClassVar[Callable[[], object] | None] = None

    def __init__(self, name, root, allowed_modules, providers) -> None:
        RecordingFaceAnalysis.created.append(
            {"name": name, "root": root, "allowed_modules": allowed_modules, "providers": providers}
        )
        if RecordingFaceAnalysis.on_create is not None:
            RecordingFaceAnalysis.on_create()
        super().__init__()


@pytest.fixture
def recording(monkeypatch):
    import insightface.app

    RecordingFaceAnalysis.created = []
    RecordingFaceAnalysis.on_create = None
    monkeypatch.setattr(insightface.app, "FaceAnalysis", RecordingFaceAnalysis)
    return RecordingFaceAnalysis


def test_constructor_loads_the_checked_folder_with_two_modules(tmp_path, recording):
    folder = _write_pack(tmp_path / "models" / "buffalo_l")
    backend = InsightFaceBackend(root=str(tmp_path))
    (args,) = recording.created
    assert args == {
        "name": str(folder),
        "root": str(tmp_path),
        "allowed_modules": ["detection", "landmark_3d_68"],
        "providers": ["CPUExecutionProvider"],
    }
    assert backend.pack_dir == folder


def test_download_true_lets_insightface_fetch_a_missing_pack(tmp_path, recording):
    folder = tmp_path / "models" / "buffalo_l"
    recording.on_create = lambda: _write_pack(folder)  # what insightface's download does
    InsightFaceBackend(root=str(tmp_path), download=True)
    (args,) = recording.created
    assert args["name"] == "buffalo_l" and args["root"] == str(tmp_path)


def test_download_true_still_rejects_an_incomplete_existing_folder(tmp_path, recording):
    _write_pack(tmp_path / "models" / "buffalo_l", ["det_10g.onnx"])
    with pytest.raises(FileNotFoundError, match="1k3d68"):
        InsightFaceBackend(root=str(tmp_path), download=True)
    assert recording.created == []


# --- the real models, wherever a pack exists ------------------------------------------------


def test_real_pack_finds_the_astronauts_face():
    pack, root = DEFAULT_MODEL_PACK, str(Path("~/.insightface").expanduser())
    try:
        check_model_pack(pack, root)
    except FileNotFoundError:
        pytest.skip(f"insightface model pack {pack} not found under {root}")
    from skimage.data import astronaut

    rgb = astronaut()
    backend = InsightFaceBackend(model_pack=pack, root=root)
    (det,) = backend.detect(rgb)
    assert det.score > 0.5
    assert det.landmarks.shape == (68, 2) and np.all(np.isfinite(det.landmarks))
    x0, y0, x1, y1 = det.box
    margin = 0.1 * det.size  # jaw/chin points may sit on the box edge
    assert np.all(det.landmarks[:, 0] >= x0 - margin) and np.all(det.landmarks[:, 0] <= x1 + margin)
    assert np.all(det.landmarks[:, 1] >= y0 - margin) and np.all(det.landmarks[:, 1] <= y1 + margin)
    # iBUG-68 order: chin (8) below the nose tip (30), below the eyes; subject's right eye
    # (36-41) on the image left of the left eye (42-47)
    lm = det.landmarks
    assert lm[8, 1] > lm[30, 1] > lm[36:48, 1].mean()
    assert lm[36:42, 0].mean() < lm[42:48, 0].mean()
    # refine on the detected box reproduces detect's landmarks (same model, same box)
    refined = backend.refine(rgb, det.box)
    assert np.isnan(refined.score)
    np.testing.assert_allclose(refined.landmarks, det.landmarks, atol=1.0)
    assert backend.describe()["model"] == "1k3d68.onnx"


# --- the real insightface code on a synthetic pack (tiny constant-output ONNX models) -------


def _constant_model(path: Path, input_hw: tuple[int, int], outputs: dict[str, np.ndarray]) -> None:
    """An ONNX model whose outputs are constants (plus 0 * mean(input), so the input is used)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", ["input.1"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    ]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    outs = []
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}_const"))
        nodes.append(helper.make_node("Add", [f"{name}_const", "nothing"], [name]))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(
        nodes,
        "synthetic",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, *input_hw])],
        outs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


FACE_BOX = (220.0, 180.0, 420.0, 420.0)  # what the synthetic detector finds in a 640x640 frame
NORM_LANDMARKS = np.random.default_rng(1).uniform(-0.5, 0.5, (68, 3)).astype(np.float32)


def _write_synthetic_pack(folder: Path) -> Path:
    """``det_10g.onnx``: an SCRFD-shaped detector (9 outputs, strides 8/16/32, 2 anchors)
    that reports one face at FACE_BOX for a 640x640 input; ``1k3d68.onnx``: a 192x192 model
    with 3309 outputs whose last 68x3 are NORM_LANDMARKS (crop coordinates in [-1, 1])."""
    folder.mkdir(parents=True)
    scores, boxes, kps = {}, {}, {}
    for stride in (8, 16, 32):
        n = (640 // stride) ** 2 * 2
        scores[stride] = np.zeros((n, 1))
        boxes[stride] = np.ones((n, 4))
        kps[stride] = np.zeros((n, 10))
    # anchor at (col 10, row 9) of stride 32: centre (320, 288)
    k, cx, cy = (9 * 20 + 10) * 2, 320.0, 288.0
    x0, y0, x1, y1 = FACE_BOX
    scores[32][k] = 0.9
    boxes[32][k] = np.array([cx - x0, cy - y0, x1 - cx, y1 - cy]) / 32
    outputs = {f"score_{s}": scores[s] for s in (8, 16, 32)}
    outputs |= {f"bbox_{s}": boxes[s] for s in (8, 16, 32)}
    outputs |= {f"kps_{s}": kps[s] for s in (8, 16, 32)}
    _constant_model(folder / "det_10g.onnx", (640, 640), outputs)
    pred = np.zeros((1, 3309), np.float32)
    pred[0, -68 * 3 :] = NORM_LANDMARKS.reshape(-1)
    _constant_model(folder / "1k3d68.onnx", (192, 192), {"fc1": pred})
    return folder


def test_real_insightface_code_on_a_synthetic_pack(tmp_path):
    pytest.importorskip("onnx")
    folder = _write_synthetic_pack(tmp_path / "models" / "buffalo_l")
    backend = InsightFaceBackend(root=str(tmp_path), providers=["CPUExecutionProvider"])
    info = backend.describe()
    assert info["detector"] == "det_10g.onnx" and info["model"] == "1k3d68.onnx"
    assert info["providers"] == "CPUExecutionProvider" and info["pack_dir"] == str(folder)

    rgb = np.full((640, 640, 3), 128, np.uint8)
    (det,) = backend.detect(rgb)
    np.testing.assert_allclose(det.box, FACE_BOX, atol=1e-3)
    assert det.score == pytest.approx(0.9)
    # Landmark.get crops a square of 1.5 x the box's longer side around the box centre, so
    # crop coordinate p in [-1, 1] maps to centre + p * 1.5 * side / 2 in image pixels
    centre = np.array([(FACE_BOX[0] + FACE_BOX[2]) / 2, (FACE_BOX[1] + FACE_BOX[3]) / 2])
    side = max(FACE_BOX[2] - FACE_BOX[0], FACE_BOX[3] - FACE_BOX[1])
    expected = centre + NORM_LANDMARKS[:, :2] * 1.5 * side / 2
    np.testing.assert_allclose(det.landmarks, expected, atol=0.05)

    refined = backend.refine(rgb, np.array(FACE_BOX))
    assert np.isnan(refined.score)
    np.testing.assert_allclose(refined.landmarks, det.landmarks, atol=1e-4)
    moved = backend.refine(rgb, np.array(FACE_BOX) + 10.0)
    np.testing.assert_allclose(moved.landmarks, det.landmarks + 10.0, atol=0.05)
