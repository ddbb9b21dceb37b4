"""Decoding videos at a chosen sampling rate."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class SampledFrame:
    """One decoded frame: its index in the source video, its time and RGB pixels."""

    index: int
    time_s: float
    rgb: np.ndarray


def sample_indices(n_frames: int, source_fps: float, target_fps: float) -> np.ndarray:
    """Source frame indices kept when sampling ``source_fps`` down to ``target_fps``.

    Frame ``i`` is kept when it is the first frame of a new ``1 / target_fps`` slot, so the
    kept frames are evenly spread and the first frame is always kept. A target at or above
    the source rate keeps every frame.
    """
    idx = np.arange(max(n_frames, 0))
    if target_fps >= source_fps or source_fps <= 0:
        return idx
    slot = np.floor(idx * target_fps / source_fps + 1e-9)
    keep = np.concatenate([[True], slot[1:] != slot[:-1]]) if len(idx) else idx.astype(bool)
    return idx[keep]


def iter_sampled_frames(
    path: str | os.PathLike[str], target_fps: float, source_fps: float | None = None
) -> Iterator[SampledFrame]:
    """Decode ``path`` and yield frames sampled at ``target_fps`` (RGB uint8).

    Frames in between are only grabbed (demuxed), not converted. Stops quietly at the end
    of the stream or at the first frame that cannot be decoded (truncated files): callers
    compare what they got with what the container announced.
    """
    cap = cv2.VideoCapture(os.fspath(path))
    try:
        if not cap.isOpened():
            return
        fps = float(source_fps or cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(fps) or fps <= 0:
            fps = target_fps
        step = fps / target_fps if target_fps < fps else 1.0
        next_slot, index = 0.0, 0
        while True:
            take = index + 1e-9 >= next_slot
            if take:
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    return
                yield SampledFrame(index, index / fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                next_slot = (math.floor((index + 1e-9) / step) + 1) * step
            elif not cap.grab():
                return
            index += 1
    finally:
        cap.release()


def read_all_frames(path: str | os.PathLike[str]) -> list[np.ndarray]:
    """Every frame of a (short) video as RGB arrays: for tests and tools, not for long videos."""
    return [f.rgb for f in iter_sampled_frames(path, float("inf"))]


def read_video_frame(video: str | os.PathLike[str], index: int) -> np.ndarray:
    """Frame ``index`` of ``video`` as RGB uint8, decoded in order from the start (exactly the
    frame the landmark stage saw, whatever the container's seeking accuracy)."""
    cap = cv2.VideoCapture(os.fspath(video))
    try:
        if not cap.isOpened():
            raise ValueError(f"cannot open video {os.fspath(video)!r}")
        for _ in range(int(index)):
            if not cap.grab():
                raise ValueError(f"{os.fspath(video)!r} ends before frame {index}")
        ok, bgr = cap.read()
        if not ok or bgr is None:
            raise ValueError(f"cannot decode frame {index} of {os.fspath(video)!r}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
