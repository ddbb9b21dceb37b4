"""insightface landmark backend: SCRFD face detection + the ``landmark_3d_68`` model.

The backend wraps insightface's ``FaceAnalysis`` restricted to
``allowed_modules=["detection", "landmark_3d_68"]`` (no recognition, gender/age or 106-point
model is loaded) and runs through onnxruntime, on the GPU when the CUDA execution provider is
available.

Model packs
-----------
insightface keeps a pack (e.g. ``buffalo_l``) as a folder of ``.onnx`` files at
``<root>/models/<pack>/`` with ``root`` defaulting to ``~/.insightface``; insightface 2.1
honours no environment variable for this location (``FaceAnalysis(root="~/.insightface")``,
``insightface.utils.storage.download``). When the folder does not exist, ``FaceAnalysis``
downloads ``<pack>.zip`` from insightface's GitHub ``model-zoo`` release and unzips it there;
when the folder exists (even incomplete) nothing is downloaded.

Compute nodes are usually offline, so by default (``download=False``) this backend never lets
insightface download: :func:`check_model_pack` verifies the pack first and raises a
:class:`FileNotFoundError` that says where to put it. With ``download=True`` a missing pack
folder is left to insightface to download on first use (needs internet).

Models inside a pack are recognised by insightface from their ONNX graphs, not their names
(``model_zoo.ModelRouter``: >= 5 outputs is the SCRFD detector; a 192x192 input with 3309
outputs is ``landmark_3d_68``). :func:`check_model_pack` must stay cheap (it also runs when the
workflow builds its DAG) and so checks file names instead, following the packs insightface
publishes: the detector is ``det_*.onnx`` (``det_10g``, ``det_2.5g``, ``det_500m``) or
``scrfd*.onnx`` (``antelopev2``), the 3D 68-point model is ``1k3d68.onnx``. The constructor
then confirms from the loaded models that both tasks are present.

Landmark order
--------------
``face.landmark_3d_68`` is (68, 3): x, y in image pixels of the image given to insightface
(``Landmark.get`` maps the crop prediction back with the inverse alignment transform) and a
depth z in the same pixel scale. Its points are in the iBUG-68 (300-W) order, the same order
the rest of the pipeline uses, so no re-ordering is needed: insightface fits its pose by point
correspondence against ``insightface/data/objects/meanshape_68.pkl``, whose points are
iBUG-68 (0-16 jaw from the subject's right to left, 17-26 brows, 27-30 nose bridge down to the
tip, 31-35 nostrils, 36-47 eyes, 48-67 mouth), and its ``MaskRenderer`` fits the BFM through
the 68 iBUG keypoint indices (``bfm.kpt_ind``) from ``landmark_3d_68[:, :2]``.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np

from facedyn.face.types import Detection

DEFAULT_MODEL_PACK = "buffalo_l"
DEFAULT_ROOT = "~/.insightface"
"""insightface's own default root (``FaceAnalysis(root=...)``); no environment variable."""
MODEL_ZOO_RELEASE_URL = "https://github.com/deepinsight/insightface/releases/download/model-zoo/"
"""Where insightface downloads ``<pack>.zip`` from (``insightface.utils.storage``)."""
CONFIG_KEYS = ("landmarks.insightface.model_pack", "landmarks.insightface.root")

DETECTION_TASK = "detection"
LANDMARK_TASK = "landmark_3d_68"
ALLOWED_MODULES = (DETECTION_TASK, LANDMARK_TASK)
DETECTION_PATTERNS = ("det_*.onnx", "scrfd*.onnx")
"""File names of the SCRFD detectors in insightface's packs (matched case-insensitively)."""
LANDMARK_3D_68_PATTERNS = ("*3d68*.onnx",)
"""File names of the 3D 68-point landmark model in insightface's packs (``1k3d68.onnx``)."""

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


def _root_path(root: str | Path | None) -> Path:
    return Path(DEFAULT_ROOT if root is None else root).expanduser()


def _is_path_like(model_pack: str) -> bool:
    return "/" in model_pack or "\\" in model_pack or model_pack.startswith(("~", "."))


def model_pack_dir(model_pack: str = DEFAULT_MODEL_PACK, root: str | Path | None = None) -> Path:
    """Folder insightface loads ``model_pack`` from: ``<root>/models/<model_pack>``.

    ``root`` defaults to ``~/.insightface``. A ``model_pack`` that is itself a path (contains a
    path separator or starts with ``~`` or ``.``) names the pack folder directly, as
    insightface's ``FaceAnalysis(name=<folder>)`` allows; ``root`` is then ignored.
    """
    if _is_path_like(model_pack):
        return Path(model_pack).expanduser()
    return _root_path(root) / "models" / model_pack


def _matching(names: list[str], patterns: tuple[str, ...]) -> list[str]:
    return [n for n in names if any(fnmatch.fnmatch(n.lower(), p) for p in patterns)]


def _onnx_names(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".onnx" and p.is_file())


def check_model_pack(model_pack: str = DEFAULT_MODEL_PACK, root: str | Path | None = None) -> Path:
    """The pack's folder, after checking it holds a detector and a ``landmark_3d_68`` model.

    Cheap: looks only at file names (no insightface/onnxruntime import, no model loading), so
    the workflow can call it when it builds the DAG.

    Raises:
        FileNotFoundError: the folder is missing or lacks ``det_*.onnx``/``scrfd*.onnx`` or
            ``*3d68*.onnx``; the message gives the full folder path, how to get the pack and
            the config keys that choose pack and root.
    """
    folder = model_pack_dir(model_pack, root)
    names = _onnx_names(folder)
    detectors = _matching(names, DETECTION_PATTERNS)
    landmarks = _matching(names, LANDMARK_3D_68_PATTERNS)
    if detectors and landmarks:
        return folder

    if not folder.exists():
        problem = "the folder does not exist"
    elif not folder.is_dir():
        problem = "it is not a folder"
    else:
        missing = []
        if not detectors:
            missing.append("a face detector (" + " or ".join(DETECTION_PATTERNS) + ")")
        if not landmarks:
            missing.append("a 68-point 3D landmark model (e.g. 1k3d68.onnx)")
        found = ", ".join(names) if names else "no .onnx files"
        problem = f"it lacks {' and '.join(missing)} (found: {found})"
        nested = [d for d in sorted(folder.iterdir()) if d.is_dir() and _onnx_names(d)]
        if nested:
            problem += (
                f"; .onnx files lie one level down in {nested[0]} — move them up into {folder}"
            )
    pack_name = folder.name
    raise FileNotFoundError(
        f"insightface model pack {model_pack!r} not found: its .onnx files (a detector such as "
        f"det_10g.onnx and the 68-point landmark model 1k3d68.onnx) must lie directly in the "
        f"folder\n    {folder}\nbut {problem}.\n"
        f"To get it: on a machine with internet insightface downloads {pack_name}.zip on first "
        f"use (construct the backend with download=True, e.g. once on a login node sharing "
        f"that folder), or download {MODEL_ZOO_RELEASE_URL}{pack_name}.zip manually from "
        f"insightface's GitHub model-zoo release and unzip it into that folder.\n"
        f"To use another pack or location set the config keys {CONFIG_KEYS[0]} (pack name, "
        f"or a path to the pack folder) and {CONFIG_KEYS[1]} (the folder holding "
        f"models/<pack>; default {DEFAULT_ROOT})."
    )


def select_providers(providers: list[str] | None = None) -> tuple[list[str], int]:
    """onnxruntime execution providers and the matching insightface ``ctx_id``.

    ``None`` picks ``[CUDAExecutionProvider, CPUExecutionProvider]`` when onnxruntime offers
    CUDA, else ``[CPUExecutionProvider]``. ``ctx_id`` is ``-1`` (insightface's "CPU only":
    ``prepare`` then pins every session to the CPU provider) when the list holds only the CPU
    provider, else ``0``.
    """
    if providers is None:
        import onnxruntime

        available = onnxruntime.get_available_providers()
        providers = [CUDA_PROVIDER, CPU_PROVIDER] if CUDA_PROVIDER in available else [CPU_PROVIDER]
    providers = list(providers)
    if not providers:
        raise ValueError("providers must name at least one onnxruntime execution provider")
    ctx_id = 0 if any(p != CPU_PROVIDER for p in providers) else -1
    return providers, ctx_id


def _bgr(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB frame of shape (H, W, 3), got {rgb.shape}")
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _landmarks_2d(landmark_3d_68: Any) -> np.ndarray:
    pts = np.asarray(landmark_3d_68, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] != 68 or pts.shape[1] < 2:
        raise RuntimeError(f"insightface landmark_3d_68 has shape {pts.shape}, expected (68, 3)")
    return np.ascontiguousarray(pts[:, :2])


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class InsightFaceBackend:
    """SCRFD detection + ``landmark_3d_68`` from an insightface model pack (onnxruntime).

    Args:
        model_pack: pack name under ``<root>/models`` (``buffalo_l``, ``buffalo_m``,
            ``buffalo_s``, ``antelopev2``; not ``buffalo_sc``, which has no landmark model), or
            a path to a pack folder. Config key ``landmarks.insightface.model_pack``.
        root: insightface's root folder; ``None`` = insightface's default ``~/.insightface``.
            Config key ``landmarks.insightface.root``.
        det_size: square detector input size in pixels.
        det_thresh: detector score threshold.
        providers: onnxruntime execution providers; ``None`` = CUDA (+ CPU fallback) when
            available, else CPU. See :func:`select_providers`.
        download: ``False`` (default, right for offline clusters): a missing pack raises
            :class:`FileNotFoundError` from :func:`check_model_pack` before anything is loaded.
            ``True``: a missing pack folder is downloaded by insightface on first use (needs
            internet); an existing but incomplete folder still raises, because insightface
            never re-downloads over an existing folder.
        face_analysis: an already constructed object with ``FaceAnalysis``'s interface
            (``models`` dict holding ``"detection"`` and ``"landmark_3d_68"`` models,
            ``prepare(ctx_id, det_thresh, det_size)``, ``get(bgr)``); the constructor then skips the pack
            check and does not import insightface. Meant for tests.
    """

    name = "insightface"
    n_dense = 0

    def __init__(
        self,
        model_pack: str = DEFAULT_MODEL_PACK,
        root: str | None = None,
        det_size: int = 640,
        det_thresh: float = 0.5,
        providers: list[str] | None = None,
        download: bool = False,
        face_analysis: object | None = None,
    ) -> None:
        self.model_pack = model_pack
        self.root = str(_root_path(root))
        self.det_size = int(det_size)
        self.det_thresh = float(det_thresh)
        self.download = download
        self.pack_dir = model_pack_dir(model_pack, root)
        needs_download = (
            face_analysis is None
            and download
            and not self.pack_dir.exists()
            and not _is_path_like(model_pack)
        )
        if face_analysis is None and not needs_download:
            check_model_pack(model_pack, root)
        self.providers, self.ctx_id = select_providers(providers)

        if face_analysis is None:
            from insightface.app import FaceAnalysis

            # A checked pack is handed to insightface as its folder, so insightface can neither
            # download nor pick up a same-named folder in the working directory; only a missing
            # pack with download=True goes by name, which makes insightface download it.
            name = model_pack if needs_download else str(self.pack_dir)
            face_analysis = FaceAnalysis(
                name=name,
                root=self.root,
                allowed_modules=list(ALLOWED_MODULES),
                providers=self.providers,
            )
            if needs_download:
                check_model_pack(model_pack, root)  # the download produced a usable pack
        self._app: Any = face_analysis
        models = getattr(self._app, "models", {})
        missing = [t for t in ALLOWED_MODULES if t not in models]
        if missing:
            raise RuntimeError(
                f"insightface model pack at {self.pack_dir} provides no {' / '.join(missing)} "
                f"model (loaded: {sorted(models)}); use a pack with a detector and 1k3d68.onnx, "
                f"e.g. buffalo_l (config key {CONFIG_KEYS[0]})"
            )
        self._app.prepare(
            ctx_id=self.ctx_id, det_thresh=self.det_thresh, det_size=(self.det_size, self.det_size)
        )
        self._landmark: Any = models[LANDMARK_TASK]
        self._face_cls: Any = None

    def _model_file(self, task: str) -> str:
        return Path(str(getattr(self._app.models[task], "model_file", "unknown"))).name

    def _providers_used(self, task: str) -> list[str]:
        session = getattr(self._app.models[task], "session", None)
        get = getattr(session, "get_providers", None)
        return list(get()) if callable(get) else list(self.providers)

    def describe(self) -> dict[str, str]:
        """Backend, pack, model files, providers in use and library versions."""
        det_providers = self._providers_used(DETECTION_TASK)
        lmk_providers = self._providers_used(LANDMARK_TASK)
        info = {
            "backend": self.name,
            "model_pack": self.model_pack,
            "root": self.root,
            "pack_dir": str(getattr(self._app, "model_dir", self.pack_dir)),
            "detector": self._model_file(DETECTION_TASK),
            "model": self._model_file(LANDMARK_TASK),
            "onnx_files": ",".join([self._model_file(t) for t in ALLOWED_MODULES]),
            "providers": ",".join(det_providers),
            "ctx_id": str(self.ctx_id),
            "det_size": str(self.det_size),
            "det_thresh": str(self.det_thresh),
            "insightface_version": _version("insightface"),
            "onnxruntime_version": _version("onnxruntime"),
        }
        if lmk_providers != det_providers:
            info["landmark_providers"] = ",".join(lmk_providers)
        return info

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """All faces in an RGB uint8 frame, in insightface's order (highest score first)."""
        faces = self._app.get(_bgr(rgb))
        out = []
        for face in faces:
            out.append(
                Detection(
                    box=np.asarray(face.bbox, dtype=np.float64)[:4].copy(),
                    score=float(face.det_score),
                    landmarks=_landmarks_2d(face.landmark_3d_68),
                )
            )
        return out

    def refine(self, rgb: np.ndarray, box: np.ndarray) -> Detection:
        """iBUG-68 landmarks for the face in ``box`` (x0, y0, x1, y1) without the detector.

        insightface's ``Landmark.get`` crops a square of 1.5x the box's longer side around the
        box centre, so only ``face.bbox`` matters. The score is NaN.
        """
        box = np.asarray(box, dtype=np.float64).reshape(-1)[:4].copy()
        if (
            box.shape != (4,)
            or not np.all(np.isfinite(box))
            or box[2] <= box[0]
            or box[3] <= box[1]
        ):
            raise ValueError(f"refine needs a finite box x0 < x1, y0 < y1; got {box}")
        if self._face_cls is None:
            from insightface.app.common import Face

            self._face_cls = Face
        face = self._face_cls(bbox=box.copy())
        pred = self._landmark.get(_bgr(rgb), face)
        return Detection(box=box, score=float("nan"), landmarks=_landmarks_2d(pred))
