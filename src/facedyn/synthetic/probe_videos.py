"""Videos that probe the landmark stage: the cohort at lower resolution, and scenes without faces.

Conversation corpora and webcams give small faces, and a video can show no face at all.
These generators make both from what is installed, for the tests and
``analysis/low_resolution.py``:

* :func:`downscale_video` shrinks a cohort video (its truth landmarks follow with
  :func:`scale_points`), down to inter-ocular distances of a few tens of pixels;
* :func:`panning_frames` moves a camera over a face-free photo shipped with scikit-learn or
  scikit-image (:data:`FACE_FREE_SCENES`: buildings, flowers, textures, a cat, text, ...),
  with a slow pan and zoom;
* :func:`drifting_texture_frames` is a multi-scale texture that drifts and changes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

from facedyn.face.video import iter_sampled_frames

log = logging.getLogger(__name__)

#: Photos without faces that ship with scikit-learn (``china``, ``flower``) and scikit-image
#: (``skimage.data`` names; those that need a download are skipped).
FACE_FREE_SCENES = (
    "china",
    "flower",
    "coffee",
    "rocket",
    "chelsea",
    "brick",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "clock",
    "page",
    "text",
    "colorwheel",
    "logo",
    "moon",
    "coins",
    "cell",
    "microaneurysms",
)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = image[..., :3].astype(np.float64)
    lo, hi = image.min(), image.max()
    return np.ascontiguousarray((255 * (image - lo) / max(hi - lo, 1e-9)).round().astype(np.uint8))


def scene_images(names: Iterable[str] = FACE_FREE_SCENES) -> dict[str, np.ndarray]:
    """The face-free photos ``names`` as RGB uint8 arrays (those that cannot load are skipped)."""
    import skimage.data
    from sklearn.datasets import load_sample_image

    out: dict[str, np.ndarray] = {}
    for name in names:
        try:
            if name in ("china", "flower"):
                image = load_sample_image(f"{name}.jpg")
            else:
                image = getattr(skimage.data, name)()
        except Exception as err:  # optional downloads (pooch) and removed datasets
            log.info("scene %s unavailable: %s", name, err)
            continue
        out[name] = _as_rgb(image)
    return out


def panning_frames(
    image: np.ndarray, size: tuple[int, int], n_frames: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """A camera panning and zooming over ``image``: ``n_frames`` RGB frames of ``size``
    (width, height), between two random crop windows of 40-100 % of the largest one."""
    h, w = image.shape[:2]
    aspect = size[0] / size[1]
    full = np.array([min(w, h * aspect), min(h, w / aspect)])

    def window() -> np.ndarray:
        extent = full * rng.uniform(0.4, 1.0)
        corner = rng.uniform(0, 1, 2) * ([w, h] - extent)
        return np.concatenate([corner, extent])

    start, end = window(), window()
    for t in np.linspace(0.0, 1.0, n_frames):
        x, y, cw, ch = (1 - t) * start + t * end
        crop = image[int(y) : int(y + ch), int(x) : int(x + cw)]
        yield cv2.resize(crop, size, interpolation=cv2.INTER_AREA)


def drifting_texture_frames(
    size: tuple[int, int], n_frames: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """A coloured multi-scale texture (blurred noise at 1-24 px) that drifts across the frame
    and slowly changes: ``n_frames`` RGB frames of ``size`` (width, height)."""
    width, height = size
    pad = 64
    shape = (height + 2 * pad, width + 2 * pad)

    def field() -> np.ndarray:
        layers = [
            gaussian_filter(rng.standard_normal((*shape, 3)), (s, s, 0)) * s
            for s in (1.0, 3.0, 8.0, 24.0)
        ]
        return np.sum(layers, axis=0)

    a, b = field(), field()
    velocity = rng.uniform(-1.0, 1.0, 2) * pad / max(n_frames, 1)
    for k, t in enumerate(np.linspace(0.0, 1.0, n_frames)):
        mix = np.cos(t * np.pi / 2) * a + np.sin(t * np.pi / 2) * b
        dx, dy = (pad + velocity * k).astype(int)
        view = mix[dy : dy + height, dx : dx + width]
        lo, hi = np.percentile(view, [1, 99])
        yield (255 * np.clip((view - lo) / max(hi - lo, 1e-9), 0, 1)).astype(np.uint8)


def write_video(
    path: str | os.PathLike[str], frames: Iterable[np.ndarray], fps: float = 30.0
) -> Path:
    """Write RGB frames to an mp4 (OpenCV's mp4v) and move it into place; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.mp4")  # OpenCV picks the container by suffix
    writer = None
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                if not writer.isOpened():
                    raise RuntimeError(f"cannot open a video writer for {path} (OpenCV mp4v)")
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        if writer is None:
            raise ValueError(f"no frames to write to {path}")
        writer.release()
        os.replace(tmp, path)
    finally:
        if writer is not None:
            writer.release()
        tmp.unlink(missing_ok=True)
    return path


def downscale_video(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], factor: float, fps: float = 30.0
) -> Path:
    """``src`` with every frame resized by ``factor`` (area averaging, as a camera further
    away or a smaller sensor would see it)."""
    frames = (
        cv2.resize(f.rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        for f in iter_sampled_frames(src, float("inf"))
    )
    return write_video(dst, frames, fps)


def scale_points(points: np.ndarray, factor: float) -> np.ndarray:
    """Pixel coordinates after an image resize by ``factor`` (pixel centres at integers)."""
    return (np.asarray(points, np.float64) + 0.5) * factor - 0.5
