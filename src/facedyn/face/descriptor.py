"""The appearance descriptor real video has: what a face recogniser sees of a session's face.

Per video (one speaker in one session), the mean of dlib's face recognition embedding (the
ResNet of ``face_recognition_models``: 128 numbers, faces of one person typically within a
Euclidean distance of 0.6) over a few of the detector's keyframes, spread over the video. It
is computed inside the landmark job, on frames already decoded, and stored in the landmark
table's metadata; the FLAME fit carries it into the FLAME table's, where the identification
stage's ``appearance_only`` baseline reads it (with the fitted mean shape). On the synthetic
controls it says how much of a result appearance could explain; on real data it is what a
face recogniser would score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from facedyn.face.models import dlib_model_path

#: dlib's face recognition ResNet in ``face_recognition_models``.
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
#: Metadata keys of the landmark and FLAME tables.
DESCRIPTOR_KEY = "appearance_descriptor"
DESCRIPTOR_FRAMES_KEY = "appearance_frames"
DESCRIPTOR_DIM = 128


class FaceDescriptor:
    """dlib's face recognition embedding of a face given its 68 iBUG landmarks."""

    def __init__(self) -> None:
        import dlib

        self._dlib = dlib
        self._model = dlib.face_recognition_model_v1(str(dlib_model_path(RECOGNITION_MODEL)))

    def describe(self, rgb: np.ndarray, box: Sequence[float], landmarks: np.ndarray) -> np.ndarray:
        """The 128-d embedding of the face at ``box`` (x0, y0, x1, y1) with ``landmarks``
        (68, 2) in ``rgb`` (H, W, 3 uint8): dlib aligns the face chip from the landmarks."""
        d = self._dlib
        rect = d.rectangle(*(round(float(v)) for v in box))
        points = [d.point(round(float(x)), round(float(y))) for x, y in np.asarray(landmarks)]
        shape = d.full_object_detection(rect, points)
        return np.asarray(self._model.compute_face_descriptor(rgb, shape), dtype=np.float64)


def mean_descriptor(vectors: Sequence[np.ndarray]) -> dict[str, Any]:
    """Metadata entries of a video's descriptor: the mean embedding (None without faces)
    and the number of frames it averages."""
    if not len(vectors):
        return {DESCRIPTOR_KEY: None, DESCRIPTOR_FRAMES_KEY: 0}
    mean = np.mean(np.stack(vectors), axis=0)
    return {DESCRIPTOR_KEY: [float(v) for v in mean], DESCRIPTOR_FRAMES_KEY: len(vectors)}


def descriptor_of(metadata: dict[str, Any]) -> np.ndarray | None:
    """A table's descriptor from its metadata, or None."""
    value = metadata.get(DESCRIPTOR_KEY)
    if value is None:
        return None
    out = np.asarray(value, dtype=np.float64)
    return out if out.shape == (DESCRIPTOR_DIM,) else None


__all__ = [
    "DESCRIPTOR_DIM",
    "DESCRIPTOR_FRAMES_KEY",
    "DESCRIPTOR_KEY",
    "FaceDescriptor",
    "descriptor_of",
    "mean_descriptor",
]
