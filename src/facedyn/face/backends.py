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

import math

import numpy as np

from facedyn.face.ibug import OUTER_EYE_CORNERS, inter_ocular
from facedyn.face.models import DLIB_SHAPE_PREDICTOR_68, dlib_model_path
from facedyn.face.types import Detection, LandmarkBackend, box_from_landmarks

__all__ = ["Detection", "DlibBackend", "LandmarkBackend", "box_from_landmarks", "make_backend"]


#: dlib's HOG detector scans an 80x80 window: faces smaller than this (box side, pixels) are
#: found only in an upsampled image.
HOG_WINDOW_PX = 80
#: Share of the frame's shorter side that a talking-head face box typically takes (CANDOR's
#: 320x240 frames, webcam calls): it sets the first keyframe's upsampling.
TYPICAL_FACE_FRACTION = 0.35


def upsampling_for(face_px: float, max_upsample: int, margin: float = 1.25) -> int:
    """Fewest 2x upsamplings (at most ``max_upsample``) that bring a face box of ``face_px``
    pixels to ``margin`` times the HOG window, so that it stays findable as it moves."""
    need = margin * HOG_WINDOW_PX / max(face_px, 1.0)
    return int(min(max(math.ceil(math.log2(need)), 0), max_upsample)) if need > 1 else 0


def plausible_face(landmarks: np.ndarray, box: np.ndarray) -> bool:
    """Whether 68 landmarks have the layout of a face: along the face's own down axis the
    eyes, nose tip, mouth and chin follow in order, each at least 0.1 inter-ocular
    distances (IOD, outer eye corners) apart; jaw width and detector box width are 1-3.5
    IOD (faces measure 1.4-2.3 on both). A coarse gate against degenerate predictions;
    the detector score is what separates faces from false detections."""
    a, b = (landmarks[i] for i in OUTER_EYE_CORNERS)
    iod = float(inter_ocular(landmarks))
    if not np.isfinite(iod) or iod < 1.0:
        return False
    across = (b - a) / iod
    down = np.array([-across[1], across[0]])
    if down @ (landmarks[8] - (a + b) / 2) < 0:
        down = -down  # a mirrored image
    depth = (landmarks - (a + b) / 2) @ down / iod
    eyes, nose, mouth, chin = depth[36:48].mean(), depth[30], depth[48:68].mean(), depth[8]
    jaw = float(np.linalg.norm(landmarks[0] - landmarks[16])) / iod
    box_width = float(box[2] - box[0]) / iod
    return bool(
        nose - eyes > 0.1
        and mouth - nose > 0.1
        and chin - mouth > 0.1
        and 1.0 <= jaw <= 3.5
        and 1.0 <= box_width <= 3.5
    )


class DlibBackend:
    """dlib's HOG detector + 68-point shape predictor (CPU, offline).

    Args:
        upsample: 2x upsamplings of the frame before detection, or ``"auto"``: chosen per
            video (:meth:`start_video`) from the frame size, then from the size of the faces
            found, and a keyframe that shows no face is tried again upsampled, up to
            ``max_upsample``, before it counts as face-free.
        max_upsample: the most upsamplings ``"auto"`` uses (1 finds faces down to about
            40 px, an inter-ocular distance of about 16 px; each level costs about 4x the
            detector time).
        min_score: detections scoring below this are discarded (dlib's HOG score; faces
            score about 1-3, false detections on face-free video below 0.2).
        min_predictor_px: faces smaller than this (box side, pixels) get their landmarks
            from an upscaled crop, on which the shape predictor is more accurate.
    """

    name = "dlib"
    n_dense = 0

    def __init__(
        self,
        upsample: int | str = "auto",
        max_upsample: int = 1,
        min_score: float = 0.3,
        min_predictor_px: int = 100,
    ) -> None:
        import dlib

        if upsample != "auto" and not (isinstance(upsample, int) and upsample >= 0):
            raise ValueError(
                f"landmarks.dlib.upsample must be 'auto' or an integer >= 0, got {upsample!r}"
            )
        self._dlib = dlib
        self.upsample = upsample
        self.max_upsample = max_upsample
        self.min_score = min_score
        self.min_predictor_px = min_predictor_px
        self._level = 0 if upsample == "auto" else int(upsample)
        self._detector = dlib.get_frontal_face_detector()
        self._predictor_path = dlib_model_path(DLIB_SHAPE_PREDICTOR_68)
        self._predictor = dlib.shape_predictor(str(self._predictor_path))
        #: Detector runs per upsampling level (retries included), for the table's metadata.
        self.runs_per_level: dict[int, int] = {}

    def describe(self) -> dict[str, str]:
        return {
            "backend": self.name,
            "detector": "dlib HOG frontal_face_detector",
            "model": self._predictor_path.name,
            "dlib_version": self._dlib.__version__,
            "upsample": str(self.upsample),
            "max_upsample": str(self.max_upsample),
            "min_score": str(self.min_score),
        }

    def start_video(self, width: int, height: int) -> None:
        """Reset the per-video state; ``"auto"`` starts at the upsampling that a typical
        talking-head face in a frame of this size needs."""
        self.runs_per_level = {}
        if self.upsample == "auto":
            self._level = upsampling_for(
                TYPICAL_FACE_FRACTION * min(width, height), self.max_upsample, margin=1.0
            )

    def _predict(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The shape predictor's 68 points for ``box`` (rounded to whole pixels) in ``rgb``."""
        shape = self._predictor(rgb, self._dlib.rectangle(*(round(float(v)) for v in box)))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    def _landmarks(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        w, h = box[2] - box[0], box[3] - box[1]
        factor = self.min_predictor_px / max(float(min(w, h)), 1.0)
        if factor <= 1.0:
            return self._predict(rgb, box)
        # A small face: predict on a crop (the box plus half its size around) scaled up.
        import cv2  # here, so that importing the backends stays light (pre-flight checks)

        x0 = max(int(np.floor(box[0] - w / 2)), 0)
        y0 = max(int(np.floor(box[1] - h / 2)), 0)
        x1 = min(int(np.ceil(box[2] + w / 2)), rgb.shape[1])
        y1 = min(int(np.ceil(box[3] + h / 2)), rgb.shape[0])
        crop = cv2.resize(
            rgb[y0:y1, x0:x1], None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR
        )
        pts = self._predict(crop, (box - [x0, y0, x0, y0]) * factor)
        # pixel centres: crop pixel i covers source pixels [i, i + 1) / factor
        return (pts + 0.5) / factor - 0.5 + [x0, y0]

    def _run(self, rgb: np.ndarray, level: int) -> list[Detection]:
        self.runs_per_level[level] = self.runs_per_level.get(level, 0) + 1
        rects, scores, _ = self._detector.run(rgb, level, self.min_score)
        out = []
        for rect, score in zip(rects, scores, strict=True):
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float64)
            landmarks = self._landmarks(rgb, box)
            if plausible_face(landmarks, box):
                out.append(Detection(box, float(score), landmarks))
        return out

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        if self.upsample != "auto":
            return self._run(rgb, self._level)
        for level in range(self._level, self.max_upsample + 1):  # _level <= max_upsample
            faces = self._run(rgb, level)
            if faces:
                # the next keyframes start at the level the largest face found needs
                self._level = upsampling_for(max(f.size for f in faces), self.max_upsample)
                return faces
        return []

    def detect_small(self, rgb: np.ndarray) -> list[Detection]:
        """Faces found with one upsampling more than detection uses: the probe that tells a
        video with faces too small for these settings from one without faces."""
        finest = self.max_upsample if self.upsample == "auto" else int(self.upsample)
        return self._run(rgb, finest + 1)

    def refine(self, rgb: np.ndarray, box: np.ndarray) -> Detection:
        box = np.asarray(box, np.float64)
        return Detection(box, float("nan"), self._landmarks(rgb, box))


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
    raise ValueError(
        f"unknown landmarks.backend {name!r}; use 'dlib', 'mediapipe' or 'insightface'"
    )
