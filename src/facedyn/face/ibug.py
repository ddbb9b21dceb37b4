"""The iBUG-68 landmark scheme's facts that every stage shares: the inter-ocular distance
(IOD, between the outer eye corners), the normalised mean error (NME) and the polylines
that connect the points (:data:`IBUG68_SEGMENTS`).

The one definition of IOD and NME: detection quality (legibility, benchmarks), the fitter's
per-frame ``nme`` column (over the 68 points, dense points aside), QC's thresholds and the
figures all use these functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:  # torch only where a caller passes tensors: landmark jobs never import it
    import torch

#: Outer eye corners of iBUG-68 (0-based): the inter-ocular distance runs between them.
OUTER_EYE_CORNERS = (36, 45)
#: Floor of an inter-ocular distance in pixels (a degenerate face must not divide by 0).
MIN_IOD_PX = 1.0
N_IBUG = 68

#: The iBUG-68 polylines: (point index range, closed) per facial feature.
IBUG68_SEGMENTS: tuple[tuple[range, bool], ...] = (
    (range(0, 17), False),  # jaw line
    (range(17, 22), False),  # right brow
    (range(22, 27), False),  # left brow
    (range(27, 31), False),  # nose bridge
    (range(31, 36), False),  # nostrils
    (range(36, 42), True),  # right eye
    (range(42, 48), True),  # left eye
    (range(48, 60), True),  # outer lips
    (range(60, 68), True),  # inner lips
)

Points = TypeVar("Points", np.ndarray, "torch.Tensor")


def inter_ocular(landmarks: Points) -> Points:
    """Distance between the outer eye corners of (..., 68 + P, 2 or 3) landmarks (numpy or
    torch, kept); not floored."""
    a, b = OUTER_EYE_CORNERS
    span = landmarks[..., b, :] - landmarks[..., a, :]
    if isinstance(span, np.ndarray):
        return np.linalg.norm(span, axis=-1)
    return span.norm(dim=-1)  # a torch tensor


def nme(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Normalised mean error: per frame, the mean point-to-point distance of ``pred`` from
    ``ref`` over the 68 iBUG points, divided by the reference's inter-ocular distance (at
    least :data:`MIN_IOD_PX`).

    Args:
        pred, ref: (..., 68, 2) landmarks in pixels, broadcastable against each other; further
            points after the 68 (dense landmarks) are ignored.

    Returns:
        Array of the leading shape (a 0-d array for one frame); NaN where a point is NaN.
    """
    p, r = np.asarray(pred, dtype=float), np.asarray(ref, dtype=float)
    for name, arr in (("pred", p), ("ref", r)):
        if arr.ndim < 2 or arr.shape[-2] < N_IBUG or arr.shape[-1] != 2:
            raise ValueError(f"{name}: landmarks must have shape (..., 68, 2), got {arr.shape}")
    p, r = p[..., :N_IBUG, :], r[..., :N_IBUG, :]
    iod = np.maximum(inter_ocular(r), MIN_IOD_PX)
    return np.linalg.norm(p - r, axis=-1).mean(axis=-1) / iod


def landmark_nme(points: np.ndarray, reference: np.ndarray) -> float:
    """:func:`nme` of one frame as a float: mean distance of ``points`` (68, 2, or 136 values)
    from ``reference`` (the same) divided by the reference's inter-ocular distance (at least
    :data:`MIN_IOD_PX`); the fitter's NME (``nme`` column of a FLAME table) when
    ``reference`` is the detection."""
    p = np.asarray(points, dtype=float).reshape(N_IBUG, 2)
    r = np.asarray(reference, dtype=float).reshape(N_IBUG, 2)
    return float(nme(p, r))
