"""The pinhole camera shared by the synthetic renderer and the fitter.

Model space (FLAME's): metres, +y up, +z towards the camera, +x to the image right.
A head posed by LBS is translated by ``t = (tx, ty, tz)`` into camera space, where the
camera sits at the origin looking down -z (so a visible head has ``tz < 0``, e.g.
``tz = -0.6`` for a face 60 cm away). Image coordinates are pixels with the origin at
the top-left corner and v growing downwards:

    u = cx + f * X / (-Z),    v = cy - f * Y / (-Z)

``f`` is the focal length in pixels. A default focal for an unknown webcam is
``focal_from_fov(width, 60 degrees)`` (horizontal field of view).
"""

from __future__ import annotations

import math

import torch


def focal_from_fov(width: float, fov_deg: float = 60.0) -> float:
    """Focal length in pixels for a horizontal field of view."""
    return 0.5 * width / math.tan(math.radians(fov_deg) / 2)


def project(
    points: torch.Tensor,
    translation: torch.Tensor,
    focal: torch.Tensor | float,
    cx: float,
    cy: float,
) -> torch.Tensor:
    """Project model-space points into pixels.

    Args:
        points: (B, N, 3) posed points in model space.
        translation: (B, 3) model -> camera translation (``tz`` negative).
        focal: scalar or (B,) focal length in pixels.
        cx, cy: principal point in pixels.

    Returns:
        (B, N, 2) pixel coordinates (u right, v down).
    """
    cam = points + translation[:, None, :]
    depth = -cam[..., 2]
    f = torch.as_tensor(focal, dtype=points.dtype, device=points.device)
    if f.dim() == 1:
        f = f[:, None]
    u = cx + f * cam[..., 0] / depth
    v = cy - f * cam[..., 1] / depth
    return torch.stack([u, v], dim=-1)
