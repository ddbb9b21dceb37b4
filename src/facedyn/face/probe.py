"""Cheap, non-raising probing of one video file: container metadata plus one decoded frame.

:func:`probe_video` is what the manifest stage runs over every video of a cohort (CANDOR:
3,312 half-hour videos), so it never decodes a whole video: it opens the container with
OpenCV (FFmpeg backend), reads the reported frame rate, frame count and size, and decodes
the *first* frame to prove the file is readable. Problems with one video never raise; they
are reported in :attr:`VideoInfo.status` and a human :attr:`VideoInfo.reason` so that the
manifest can list the video and say why it cannot be used.

Statuses
--------
``"ok"``          the container opens, reports a positive frame rate and a first frame decodes.
``"missing"``     there is no file at the path (or the path is a broken symbolic link).
``"empty"``       the file exists but has zero bytes.
``"unreadable"``  anything else: a directory, no read permission, OpenCV cannot open it, no
                  decodable first frame, or a frame rate / frame size that is not positive.

Unknown numbers
---------------
For videos that are not ``"ok"`` the numbers are unknown: ``fps`` and ``duration_s`` are NaN,
``n_frames``, ``width`` and ``height`` are 0.

``n_frames`` is the container's frame count as reported by OpenCV's FFmpeg backend (the
stream's frame count, or FFmpeg's duration x frame-rate estimate where the container gives
no count). It can differ by a frame or two from the number of frames that actually decode;
the landmark stage records the frames it really read. When the container reports no usable
count (0, negative or NaN) although the first frame decodes, the video stays ``"ok"`` with
``n_frames = -1`` and ``duration_s = NaN``, and ``reason`` says so: the count is then
established by decoding, downstream. ``duration_s`` is ``n_frames / fps``.

``width`` and ``height`` are those of the decoded first frame (what decoding actually yields,
including OpenCV's automatic rotation of phone videos), not the container's numbers.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2

log = logging.getLogger(__name__)

#: Every value :attr:`VideoInfo.status` can take.
VIDEO_STATUSES = ("ok", "missing", "empty", "unreadable")


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learned about one video file (see the module docstring)."""

    fps: float = math.nan
    n_frames: int = 0
    width: int = 0
    height: int = 0
    duration_s: float = math.nan
    status: str = "unreadable"
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True when the video can be used (``status == "ok"``)."""
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (one manifest row's video columns)."""
        return asdict(self)


def _bad(status: str, reason: str) -> VideoInfo:
    return VideoInfo(status=status, reason=reason)


def _backend() -> int:
    """FFmpeg when this OpenCV build has it (the predictable choice), else OpenCV's pick."""
    try:
        if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
            return cv2.CAP_FFMPEG
    except Exception:  # very old or unusual builds without the registry
        pass
    return cv2.CAP_ANY


def _check_file(path: Path) -> VideoInfo | None:
    """The status of a path that cannot be a video at all, or None when it is worth opening."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            return _bad(
                "missing",
                f"broken symbolic link to {os.readlink(path)}: restore the target or fix the link",
            )
        return _bad("missing", "no such file: check the path or re-download the video")
    except OSError as exc:
        return _bad(
            "unreadable",
            f"cannot access the file ({exc.strerror or exc}): "
            "check permissions and the file system",
        )
    if path.is_dir():
        return _bad("unreadable", "the path is a directory, not a video file: fix the path")
    if st.st_size == 0:
        return _bad("empty", "file is 0 bytes: re-download the video or remove the row")
    if not os.access(path, os.R_OK):
        return _bad("unreadable", "no permission to read the file: fix its permissions")
    return None


def _read(path: Path) -> VideoInfo:
    cap = cv2.VideoCapture(str(path), _backend())
    try:
        if not cap.isOpened():
            return _bad(
                "unreadable",
                "OpenCV/FFmpeg cannot open the file (not a video, or "
                "truncated/corrupt): re-download or re-encode it",
            )
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        count = float(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        c_w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        c_h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok or frame is None or frame.size == 0:
        return _bad(
            "unreadable",
            "the first frame cannot be decoded (corrupt stream or "
            "unsupported codec): re-download or re-encode the video",
        )
    height, width = (int(frame.shape[0]), int(frame.shape[1]))
    if (c_w, c_h) != (width, height) and c_w > 0 and c_h > 0:
        log.debug(
            "%s: container says %dx%d, first frame is %dx%d; using the frame",
            path,
            c_w,
            c_h,
            width,
            height,
        )
    if width <= 0 or height <= 0:
        return _bad(
            "unreadable", f"frame size {width}x{height} is not positive: re-encode the video"
        )
    if not math.isfinite(fps) or fps <= 0:
        return VideoInfo(
            width=width,
            height=height,
            status="unreadable",
            reason=f"container reports no valid frame rate ({fps!r}): "
            "re-encode the video with a constant frame rate",
        )
    reason = ""
    if math.isfinite(count) and count >= 1:
        n_frames = round(count)
        duration = n_frames / fps
    else:
        n_frames, duration = -1, math.nan
        reason = (
            f"container reports no frame count ({count!r}); n_frames = -1 and the "
            "duration is unknown until the video is decoded (re-muxing the file fixes it)"
        )
    return VideoInfo(
        fps=fps,
        n_frames=n_frames,
        width=width,
        height=height,
        duration_s=duration,
        status="ok",
        reason=reason,
    )


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Probe ``path`` cheaply: container metadata plus the first decoded frame.

    Never raises for problems of the video itself; see the module docstring for the statuses
    and for what the numbers mean when the container is incomplete.
    """
    path = Path(path)
    try:
        bad = _check_file(path)
        if bad is not None:
            return bad
        return _read(path)
    except Exception as exc:  # a per-video problem must never stop a cohort-wide run
        log.debug("probing %s failed", path, exc_info=True)
        return _bad(
            "unreadable",
            f"probing failed ({type(exc).__name__}: {exc}): re-download or re-encode the video",
        )
