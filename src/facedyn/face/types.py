"""What every landmark backend produces and what the tracker needs from one: the types the
backends (``facedyn.face.backends``, ``mediapipe_backend``, ``insightface_backend``) and the
tracker share, in a module that imports none of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


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
