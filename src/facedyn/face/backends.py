"""Face detection + 68-point landmark backends behind one small interface.

A backend finds faces in an RGB frame (``detect``) and, for tracking, places the 68 iBUG
landmarks inside a given face box without running the detector (``refine``). Every
backend produces iBUG-68 in pixel coordinates, so every later stage is backend-agnostic;
a backend with dense landmarks (``n_dense`` > 0) reports them as well.

- :class:`DlibBackend`: HOG frontal-face detector + the 68-point shape predictor shipped in
  ``face_recognition_models``. CPU, offline; the default for the synthetic cohort.
- ``MediaPipeBackend`` (``facedyn.face.mediapipe_backend``): MediaPipe's face mesh, 478
  dense points (``Detection.dense``) and iBUG-68 from them; CPU, offline, the ``mediapipe``
  extra.
- ``InsightFaceBackend`` (``facedyn.face.insightface_backend``): SCRFD detection +
  ``landmark_3d_68`` from an insightface model pack, on the GPU through onnxruntime when
  available.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facedyn.face.models import DLIB_SHAPE_PREDICTOR_68, dlib_model_path


@dataclass(frozen=True)
class Detection:
    """One face in one frame.

    Attributes:
        box: (4,) float ``x0, y0, x1, y1`` in pixels.
        score: detector confidence (backend-specific scale); NaN when the landmarks came
            from ``refine`` without a detector run.
        landmarks: (68, 2) float iBUG-68 landmarks in pixels.
        dense: (P, 2) float dense landmarks in pixels, in the backend's own order, from
            backends that have them (``n_dense`` > 0); None otherwise.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    dense: np.ndarray | None = None

    @property
    def size(self) -> float:
        """Geometric mean of box width and height (pixels)."""
        w, h = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return float(np.sqrt(max(w, 0.0) * max(h, 0.0)))


class LandmarkBackend(Protocol):
    """What the tracker needs from a landmark backend."""

    name: str
    #: Dense landmarks per face (0: iBUG-68 only).
    n_dense: int

    def describe(self) -> dict[str, str]:
        """Model names/paths/versions for the table's metadata."""
        ...

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """All faces in an RGB uint8 frame (H, W, 3), with landmarks."""
        ...

    def refine(self, rgb: np.ndarray, box: np.ndarray) -> Detection:
        """Landmarks for the face inside ``box`` (tracking between detections)."""
        ...


def box_from_landmarks(landmarks: np.ndarray, pad: float = 0.0) -> np.ndarray:
    """Tight (optionally padded) box ``x0, y0, x1, y1`` around landmarks."""
    lo, hi = landmarks.min(0), landmarks.max(0)
    margin = pad * (hi - lo)
    return np.concatenate([lo - margin, hi + margin]).astype(np.float64)


class DlibBackend:
    """dlib's HOG detector + 68-point shape predictor (CPU, offline)."""

    name = "dlib"
    n_dense = 0

    def __init__(self, upsample: int = 0, min_score: float = 0.0) -> None:
        import dlib

        self._dlib = dlib
        self.upsample = upsample
        self.min_score = min_score
        self._detector = dlib.get_frontal_face_detector()
        self._predictor_path = dlib_model_path(DLIB_SHAPE_PREDICTOR_68)
        self._predictor = dlib.shape_predictor(str(self._predictor_path))

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "detector": "dlib HOG frontal_face_detector",
                "model": self._predictor_path.name, "dlib_version": self._dlib.__version__,
                "upsample": str(self.upsample)}

    def _landmarks(self, rgb: np.ndarray, rect: object) -> np.ndarray:
        shape = self._predictor(rgb, rect)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        rects, scores, _ = self._detector.run(rgb, self.upsample, self.min_score)
        out = []
        for rect, score in zip(rects, scores, strict=True):
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float64)
            out.append(Detection(box, float(score), self._landmarks(rgb, rect)))
        return out

    def refine(self, rgb: np.ndarray, box: np.ndarray) -> Detection:
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        rect = self._dlib.rectangle(x0, y0, x1, y1)
        return Detection(np.asarray(box, np.float64), float("nan"), self._landmarks(rgb, rect))


def make_backend(name: str, **options: object) -> LandmarkBackend:
    """Backend by config name (``landmarks.backend``)."""
    if name == "dlib":
        return DlibBackend(**options)  # type: ignore[arg-type]
    if name == "mediapipe":
        from facedyn.face.mediapipe_backend import MediaPipeBackend

        return MediaPipeBackend(**options)  # type: ignore[arg-type]
    if name == "insightface":
        from facedyn.face.insightface_backend import InsightFaceBackend

        return InsightFaceBackend(**options)  # type: ignore[arg-type]
    raise ValueError(f"unknown landmarks.backend {name!r}; use 'dlib', 'mediapipe' or 'insightface'")
