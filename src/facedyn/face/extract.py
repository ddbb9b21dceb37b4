"""The landmarks stage: one video in, one landmark table out, whatever the video is like.

Every video yields a table, also a missing, empty, corrupt or face-less one: then it has
zero (or few) valid frames and its metadata says ``status`` and ``reason``. A video whose
faces are too small for the detector's settings says so (``face_too_small``, with the size
seen by a finer probe), apart from one that shows no face (``no_face``). Nothing here
raises for per-video problems, so one bad file among thousands cannot stop a run; QC
(:mod:`facedyn.qc`) reads the statuses and excludes what must be excluded.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
from tqdm import tqdm

from facedyn.face.descriptor import FaceDescriptor, mean_descriptor
from facedyn.face.ibug import OUTER_EYE_CORNERS
from facedyn.face.probe import probe_video
from facedyn.face.track import FaceTracker
from facedyn.face.types import LandmarkBackend
from facedyn.face.video import iter_sampled_frames, sample_indices
from facedyn.tables import read_table, write_table

log = logging.getLogger(__name__)

LANDMARK_X = [f"lx{k:02d}" for k in range(68)]
LANDMARK_Y = [f"ly{k:02d}" for k in range(68)]
COLUMNS = [
    "frame",
    "time_s",
    "detected",
    "tracked",
    "score",
    "x0",
    "y0",
    "x1",
    "y1",
    *LANDMARK_X,
    *LANDMARK_Y,
]


def dense_columns(n: int | Sequence[int]) -> list[str]:
    """Columns of dense landmarks (``dx000..``, then ``dy000..``), after :data:`COLUMNS`: of
    the first ``n``, or of the points ``n`` when a sequence of indices."""
    points = range(n) if isinstance(n, int) else n
    return [f"dx{k:03d}" for k in points] + [f"dy{k:03d}" for k in points]


#: Landmark-table statuses (metadata ``status``).
STATUSES = ("ok", "missing", "empty", "unreadable", "no_face", "face_too_small", "truncated")
#: Sampled frames that the small-face probe looks at when no face was found.
PROBE_FRAMES = 5


def empty_table() -> pd.DataFrame:
    """A landmark table with the contract's columns and no rows."""
    df = pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
    return df.astype({"frame": "int64", "detected": "bool", "tracked": "bool"})


def extract_landmarks(
    video: str | os.PathLike[str],
    backend: LandmarkBackend,
    target_fps: float = 15.0,
    redetect_every_s: float = 1.0,
    progress: TextIO | None = None,
    appearance_frames: int = 4,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Track one face through ``video`` sampled at ``target_fps``; the appearance
    descriptor (:mod:`facedyn.face.descriptor`) averages ``appearance_frames`` of the
    detector's keyframes spread over the video (0: none).

    Returns:
        The landmark table (one row per sampled frame, columns :data:`COLUMNS`) and its
        metadata (backend, fps, size, status, reason, counts, seconds).
    """
    start = time.perf_counter()
    info = probe_video(video)
    meta: dict[str, Any] = {
        **backend.describe(),
        "video": str(video),
        "source_fps": info.fps,
        "sampled_fps": float(min(target_fps, info.fps)) if info.ok else float(target_fps),
        "width": info.width,
        "height": info.height,
        "n_frames_announced": info.n_frames,
    }
    if not info.ok:
        log.warning("%s: %s (%s); writing an empty landmark table", video, info.status, info.reason)
        return empty_table(), {
            **meta,
            "status": info.status,
            "reason": info.reason,
            "frames_sampled": 0,
            "frames_detected": 0,
            "seconds": time.perf_counter() - start,
        }

    redetect = max(1, round(redetect_every_s * meta["sampled_fps"]))
    start_video = getattr(backend, "start_video", None)
    if start_video is not None:
        start_video(info.width, info.height)
    tracker = FaceTracker(backend, redetect_every=redetect)
    expected = (
        len(sample_indices(info.n_frames, info.fps, target_fps)) if info.n_frames > 0 else None
    )
    # frames kept for the small-face probe: evenly spread over the expected frames
    probe_at = set(np.linspace(0, (expected or PROBE_FRAMES) - 1, PROBE_FRAMES).round().astype(int))
    probe_frames: list[np.ndarray] = []
    # keyframes kept for the appearance descriptor: (row, frame, box, landmarks), one per
    # stretch of the expected frames, so a long video keeps a handful, not all of them
    keyframes: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    stride = max(1, (expected or 0) // max(1, appearance_frames))
    next_keyframe = 0
    rows: list[list[float]] = []
    nan68 = [math.nan] * 136
    n_dense = int(getattr(backend, "n_dense", 0))
    dense: list[np.ndarray] = []
    nan_dense = np.full(2 * n_dense, np.nan, dtype=np.float32)
    frames = iter_sampled_frames(video, target_fps, source_fps=info.fps)
    bar = tqdm(
        frames,
        total=expected,
        file=progress or sys.stderr,
        mininterval=5.0,
        desc=Path(video).name,
        unit="frame",
        disable=progress is None,
    )
    for position, frame in enumerate(bar):
        if position in probe_at:
            probe_frames.append(frame.rgb)
        res = tracker.update(frame.rgb)
        if res.retract_previous:
            _withdraw(rows, dense, nan_dense)
        det = res.detection
        if (
            det is not None
            and res.detected_by_detector
            and len(keyframes) < appearance_frames
            and position >= next_keyframe
        ):
            keyframes.append((len(rows), frame.rgb, det.box.copy(), det.landmarks.copy()))
            next_keyframe = position + stride
        if det is None:
            rows.append(
                [frame.index, frame.time_s, False, False, math.nan, *[math.nan] * 4, *nan68]
            )
        else:
            rows.append(
                [
                    frame.index,
                    frame.time_s,
                    True,
                    not res.detected_by_detector,
                    det.score,
                    *det.box.tolist(),
                    *det.landmarks[:, 0].tolist(),
                    *det.landmarks[:, 1].tolist(),
                ]
            )
        if n_dense:
            pts = det.dense if det is not None and det.dense is not None else None
            dense.append(nan_dense if pts is None else pts.T.ravel().astype(np.float32))
    bar.close()
    if tracker.tentative:  # the video ended before the last track was confirmed
        _withdraw(rows, dense, nan_dense)
    if progress is not None:
        progress.write("\n")  # tqdm leaves the cursor on the bar's line
    df = pd.DataFrame(rows, columns=COLUMNS) if rows else empty_table()
    df = df.astype({"frame": "int64", "detected": "bool", "tracked": "bool"})
    if n_dense:
        values = np.stack(dense) if dense else np.zeros((0, 2 * n_dense), np.float32)
        df = pd.concat([df, pd.DataFrame(values, columns=dense_columns(n_dense))], axis=1)
    n_detected = int(df["detected"].sum())
    kept = [k for k in keyframes if bool(df["detected"].iloc[k[0]])]  # not withdrawn since
    if kept:
        describer = FaceDescriptor()
        meta.update(mean_descriptor([describer.describe(f, b, lm) for _, f, b, lm in kept]))
    else:
        meta.update(mean_descriptor([]))
    status, reason = "ok", ""
    if not rows:
        status, reason = (
            "unreadable",
            "no frame could be decoded: re-encode or re-download the video",
        )
    elif expected is not None and len(rows) < 0.98 * expected - 1:
        status = "truncated"
        reason = (
            f"decoding stopped after {len(rows)} of {expected} sampled frames: the file is "
            "truncated or corrupt; frames decoded so far are kept"
        )
    if rows and n_detected == 0:
        status, reason = "no_face", "no face was found in any sampled frame"
        small = _probe_small_faces(backend, probe_frames)
        if small is not None:
            status = "face_too_small"
            reason = (
                f"no face was tracked, but a finer search found faces of about {small:.0f} px "
                f"in {PROBE_FRAMES} sampled frames, smaller than the detector's settings "
                "find: raise landmarks.dlib.max_upsample (slower) or use a higher-resolution "
                "video"
            )
    found = df[df["detected"]]
    face_px = np.sqrt((found["x1"] - found["x0"]) * (found["y1"] - found["y0"]))
    a, b = OUTER_EYE_CORNERS
    iod_px = np.hypot(
        found[f"lx{b:02d}"] - found[f"lx{a:02d}"], found[f"ly{b:02d}"] - found[f"ly{a:02d}"]
    )
    meta.update(
        {
            "face_px_median": float(face_px.median()) if len(found) else None,
            "iod_px_median": float(iod_px.median()) if len(found) else None,
            "detector_runs_per_upsample": {
                str(k): v for k, v in sorted(getattr(backend, "runs_per_level", {}).items())
            },
        }
    )
    meta.update(
        {
            "status": status,
            "reason": reason,
            "frames_sampled": len(rows),
            "frames_detected": n_detected,
            "redetect_every_frames": redetect,
            "dense_points": n_dense,
            "detector_runs": tracker.detector_runs,
            "multi_face_runs": tracker.multi_face_runs,
            "seconds": round(time.perf_counter() - start, 3),
        }
    )
    log.info(
        "%s: %d/%d frames with a face, status %s, %.1f s",
        video,
        n_detected,
        len(rows),
        status,
        meta["seconds"],
    )
    return df, meta


def _withdraw(rows: list[list[float]], dense: list[np.ndarray], nan_dense: np.ndarray) -> None:
    """Mark the last row as face-less (its track was not confirmed)."""
    last = rows[-1]
    rows[-1] = [*last[:2], False, False, math.nan, *[math.nan] * (len(last) - 5)]
    if dense:
        dense[-1] = nan_dense


def _probe_small_faces(backend: LandmarkBackend, frames: list[np.ndarray]) -> float | None:
    """Median face size (box side, px) that the backend's finer search (``detect_small``)
    finds in at least two of ``frames``; None when it finds none or has no such search."""
    search = getattr(backend, "detect_small", None)
    if search is None:
        return None
    sizes = []
    for rgb in frames:
        faces = search(rgb)
        if faces:
            sizes.append(max(f.size for f in faces))
    return float(np.median(sizes)) if len(sizes) >= 2 else None


def run_landmarks(
    video: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    backend: LandmarkBackend,
    settings: Mapping[str, Any],
    ids: Mapping[str, str],
    provenance: Mapping[str, Any] | None = None,
    progress: TextIO | None = None,
) -> dict[str, Any]:
    """Extract landmarks for one manifest row and write the table atomically."""
    if video is None or str(video) == "":
        df = empty_table()
        meta = {
            **backend.describe(),
            "status": "missing",
            "reason": "the manifest has no video path",
        }
    else:
        df, meta = extract_landmarks(
            video,
            backend,
            float(settings.get("fps", 15.0)),
            float(settings.get("redetect_every_s", 1.0)),
            progress,
            int(settings.get("appearance_frames", 4)),
        )
    meta = {**meta, **ids, "settings": dict(settings), "provenance": dict(provenance or {})}
    write_table(df, out, meta)
    return meta


def dense_points(df: pd.DataFrame, indices: np.ndarray) -> np.ndarray | None:
    """(N, P, 2) dense landmarks ``indices`` of a landmark table; None when it has none."""
    cols = dense_columns(list(indices))
    if not set(cols) <= set(df.columns):
        return None
    values = df[cols].to_numpy(np.float64)
    return np.stack([values[:, : len(indices)], values[:, len(indices) :]], axis=-1)


def with_true_landmarks(
    detected: str | os.PathLike[str],
    truth: str | os.PathLike[str],
    out: str | os.PathLike[str],
    **meta: Any,
) -> Path:
    """Write the landmark table ``detected`` with the synthetic truth's exact landmarks at its
    frames (every frame detected) to ``out``; ``meta`` is added to its metadata. For
    separating the detector's share of an error from the fitter's."""
    df, stored = read_table(detected)
    true, _ = read_table(truth)
    cols = [*LANDMARK_X, *LANDMARK_Y]
    merged = df.drop(columns=cols).merge(true[["frame", *cols]], on="frame", how="inner")
    merged["detected"] = True
    write_table(merged, out, {**stored, **meta})
    return Path(out)


def landmarks_array(df: pd.DataFrame) -> np.ndarray:
    """(N, 68, 2) landmarks of a landmark table (NaN where no face)."""
    return np.stack([df[LANDMARK_X].to_numpy(float), df[LANDMARK_Y].to_numpy(float)], axis=-1)
