"""Legibility: how well the landmark detector reads the synthetic cohort's true facial motion.

Validation only. The synthetic cohort writes the true projected iBUG-68 landmarks of every
video frame (``truth/frames/<session>/<speaker>.parquet``: ``frame``, ``lx00..lx67``,
``ly00..ly67``, pixels); a landmark table (:mod:`facedyn.face.extract`, sampled at
``landmarks.fps``) is joined to it on ``frame``.

What is compared are four facial measures per frame (:func:`landmark_measures`), not raw
points: a detector can place points within a few percent of the inter-ocular distance and
still miss how far the mouth opens. Rigid head motion is removed first: every frame of a
video is aligned by a similarity transform of its *rigid* points (nose 27-35 and eye corners
36, 39, 42, 45, which no expression moves) onto the video's own reference shape (their median
after alignment, turned upright), so translation, head size, distance to the camera and
in-plane rotation drop out, estimated from thirteen points rather than one distance. Each
measure is then a distance on the upright reference's axes divided by its inter-ocular
distance (IOD, outer eye corners 36 and 45):

* ``mouth_opening``: inner-lip gap (lower minus upper lip on the down axis), mean over the
  pairs (62, 66), (61, 67), (63, 65); negative where the lips pass through each other;
* ``mouth_width``: distance of the mouth corners 48 and 54;
* ``brow_height``: eye centre (mean of 36-41, 42-47) minus brow centre (mean of 17-21,
  22-26) on the down axis, mean over both sides;
* ``eye_opening``: lid gap (lower minus upper lid on the down axis), mean over the pairs
  (37, 41), (38, 40), (43, 47), (44, 46).

The detector's and the truth's landmarks are each aligned to their own reference, so neither
borrows anything from the other.

Per video (:func:`video_legibility`): the detection rate, Pearson r between the detector's and
the truth's measure over the detected frames, the landmark NME (:func:`facedyn.face.ibug.nme`) and the truth's
own statistics. The cohort summary (:func:`cohort_legibility`) judges the medians against
:data:`TARGETS`. :func:`run_legibility` is the ``legibility`` rule: it pairs each landmark
table with its truth and writes ``results/landmarks/legibility.{parquet,json}``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from facedyn.atomic import atomic_write_json
from facedyn.face.ibug import nme
from facedyn.face.track import RIGID_LANDMARKS
from facedyn.names import table_ids
from facedyn.synthetic.layout import frame_table
from facedyn.tables import read_table, write_table

log = logging.getLogger(__name__)

# The landmark columns of landmark tables and truth frames alike (facedyn.face.extract).
LANDMARK_X = [f"lx{k:02d}" for k in range(68)]
LANDMARK_Y = [f"ly{k:02d}" for k in range(68)]

#: The measures of :func:`landmark_measures`, in the order tables and figures list them.
MEASURES: tuple[str, ...] = ("mouth_opening", "mouth_width", "brow_height", "eye_opening")
#: Measures whose truth can go negative (self-intersection): they get percentiles and minima.
GAP_MEASURES: tuple[str, ...] = ("mouth_opening", "eye_opening")

#: Cohort targets: summary value -> (comparison, threshold). ``<measure>_r`` is the median
#: over videos of the per-video Pearson r, ``nme`` the median over videos of the per-video
#: median NME, ``detection_rate`` the share of all sampled frames with a detected face.
TARGETS: dict[str, tuple[str, float]] = {
    "mouth_opening_r": (">=", 0.90),
    "mouth_width_r": (">=", 0.85),
    "brow_height_r": (">=", 0.70),
    "eye_opening_r": (">=", 0.70),
    "nme": ("<=", 0.04),
    "detection_rate": (">=", 0.98),
}

_INNER_LIPS = ((62, 66), (61, 67), (63, 65))  # (upper, lower)
_LIDS = ((37, 41), (38, 40), (43, 47), (44, 46))  # (upper, lower)
_BROWS = ((range(36, 42), range(17, 22)), (range(42, 48), range(22, 27)))  # (eye, brow)
_MIN_SD = 1e-9  # below this a measure counts as constant (in IOD units)


def _as_landmarks(lmk: np.ndarray) -> np.ndarray:
    arr = np.asarray(lmk, dtype=float)
    if arr.shape[-2:] != (68, 2):
        raise ValueError(f"landmarks must have shape (..., 68, 2), got {arr.shape}")
    return arr


def landmarks_from_table(df: pd.DataFrame) -> np.ndarray:
    """(N, 68, 2) landmarks of a table with ``lx00..lx67``, ``ly00..ly67`` columns."""
    return np.stack([df[LANDMARK_X].to_numpy(float), df[LANDMARK_Y].to_numpy(float)], axis=-1)


def frame_errors(
    detected: pd.DataFrame, truth: pd.DataFrame, factor: float | None = None
) -> np.ndarray:
    """NME of every detected frame of a landmark table against its video's truth frames.

    ``truth`` holds one row per video frame in order (the synthetic cohort's
    ``truth/frames`` table), so a sampled frame's truth is its row ``frame``. A ``factor``
    rescales the truth for a video resized by it
    (:func:`~facedyn.synthetic.probe_videos.scale_points`). Frames without a face have no
    error and are left out.
    """
    target = landmarks_from_table(truth)[detected["frame"].to_numpy()]
    if factor is not None:
        from facedyn.synthetic.probe_videos import scale_points  # loads cv2: only when resized

        target = scale_points(target, factor)
    errors = nme(landmarks_from_table(detected), target)
    return errors[np.isfinite(errors)]


def face_axes(lmk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The face's own frame per landmark set: (x axis, down axis, IOD).

    The x axis is the unit vector from point 36 to point 45; the down axis is perpendicular
    to it, on the side of the chin (point 8), so a mirrored image keeps "down" towards the
    chin. Sets with coinciding eye corners get NaN axes.
    """
    arr = _as_landmarks(lmk)
    span = arr[..., 45, :] - arr[..., 36, :]
    iod = np.linalg.norm(span, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        x_axis = np.where(iod[..., None] > 0, span / iod[..., None], np.nan)
    down = np.stack([-x_axis[..., 1], x_axis[..., 0]], axis=-1)  # x rotated 90° in image coords
    chin = arr[..., 8, :] - 0.5 * (arr[..., 36, :] + arr[..., 45, :])
    side = np.sign(np.sum(chin * down, axis=-1))
    down = down * np.where(side < 0, -1.0, 1.0)[..., None]
    return x_axis, down, np.where(iod > 0, iod, np.nan)


def rigid_align(lmk: np.ndarray) -> tuple[np.ndarray, float]:
    """Frames aligned onto their common upright reference by their rigid points.

    Args:
        lmk: (N, 68, 2) landmarks of one video (NaN rows allowed).

    Returns:
        (aligned, iod): the aligned landmarks, in a frame whose x axis runs from the
        reference's point 36 to its point 45 and whose y axis points to its chin, and the
        reference's inter-ocular distance. One frame is its own reference (only turned
        upright and centred); with no valid frame everything is NaN.
    """
    arr = _as_landmarks(lmk).reshape(-1, 68, 2)
    z = arr[..., 0] + 1j * arr[..., 1]
    valid = np.isfinite(z[:, RIGID_LANDMARKS]).all(1)
    out = np.full_like(arr, np.nan)
    if not valid.any():
        return out, math.nan
    rigid = z[valid][:, RIGID_LANDMARKS]
    ref = rigid[0]

    def fit(target: np.ndarray) -> np.ndarray:
        # least-squares similarity of every frame's rigid points onto ``target`` (complex)
        src_mean, dst_mean = rigid.mean(1, keepdims=True), target.mean()
        src, dst = rigid - src_mean, target - dst_mean
        gain = (np.conj(src) * dst).sum(1, keepdims=True) / (np.abs(src) ** 2).sum(1, keepdims=True)
        return (z[valid] - src_mean) * gain + dst_mean

    for _ in range(2):  # generalised Procrustes: the reference is the median aligned shape
        moved = fit(ref)
        ref = (
            np.median(moved.real, 0)[RIGID_LANDMARKS]
            + 1j * np.median(moved.imag, 0)[RIGID_LANDMARKS]
        )
    moved = fit(ref)
    full_ref = np.stack([np.median(moved.real, 0), np.median(moved.imag, 0)], -1)
    x_axis, down, iod = face_axes(full_ref)
    centre = full_ref[RIGID_LANDMARKS].mean(0)
    pts = np.stack([moved.real, moved.imag], -1) - centre
    out[valid] = np.stack([pts @ x_axis, pts @ down], -1)
    return out, float(iod)


def landmark_measures(lmk: np.ndarray) -> pd.DataFrame:
    """The four legibility measures of one video's (N, 68, 2) landmarks, one row per frame.

    Columns :data:`MEASURES`, each in units of the reference's inter-ocular distance, after
    :func:`rigid_align` (see the module docstring for the points they use). Rows with NaN
    landmarks are NaN.
    """
    aligned, iod = rigid_align(lmk)

    def gap(pairs: Iterable[tuple[int, int]]) -> np.ndarray:
        return np.mean([aligned[:, lo, 1] - aligned[:, up, 1] for up, lo in pairs], axis=0) / iod

    brows = [
        aligned[:, list(eye), 1].mean(1) - aligned[:, list(brow), 1].mean(1) for eye, brow in _BROWS
    ]
    return pd.DataFrame(
        {
            "mouth_opening": gap(_INNER_LIPS),
            "mouth_width": np.linalg.norm(aligned[:, 54] - aligned[:, 48], axis=-1) / iod,
            "brow_height": np.mean(brows, axis=0) / iod,
            "eye_opening": gap(_LIDS),
        },
        columns=list(MEASURES),
    )


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 3 or np.std(a) < _MIN_SD or np.std(b) < _MIN_SD:
        return math.nan
    return float(stats.pearsonr(a, b).statistic)


def _finite(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    return arr[np.isfinite(arr)]


def _stat(values: Any, fn: Any) -> float:
    arr = _finite(values)
    return float(fn(arr)) if len(arr) else math.nan


def video_columns() -> list[str]:
    """The per-video columns of :func:`video_legibility` (after the video's ids)."""
    cols = [
        "frames_sampled",
        "frames_detected",
        "frames_matched",
        "detection_rate",
        *(f"{m}_r" for m in MEASURES),
        "nme_median",
        "nme_p90",
    ]
    for m in MEASURES:
        cols += [f"{m}_detected_sd", f"{m}_truth_sd"]
        if m in GAP_MEASURES:
            cols += [f"{m}_truth_p05", f"{m}_truth_median", f"{m}_truth_p95", f"{m}_truth_min"]
    return cols


def video_legibility(detected: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Legibility of one video: a landmark table against the cohort's truth frames.

    The tables are joined on ``frame`` (the detector samples a subset of the video frames).
    ``detection_rate`` is detected sampled frames / sampled frames; r (``<measure>_r``), NME
    and the detector's sd (``<measure>_detected_sd``) are over the detected frames; the
    truth's statistics (``<measure>_truth_sd`` and, for :data:`GAP_MEASURES`, ``_truth_p05``,
    ``_truth_median``, ``_truth_p95``, ``_truth_min``) are over every sampled frame, detected or not, so they
    describe the truth whatever the detector did. r is NaN with fewer than 3 frames or a
    constant measure.

    Returns:
        A dict with the keys of :func:`video_columns`.

    Raises:
        ValueError: sampled frames have no truth row (the tables are not of one video).
    """
    sampled = detected[["frame", "detected", *LANDMARK_X, *LANDMARK_Y]]
    joined = sampled.merge(
        truth[["frame", *LANDMARK_X, *LANDMARK_Y]], on="frame", how="inner", suffixes=("", "_true")
    )
    if len(joined) < len(sampled):
        raise ValueError(
            f"{len(sampled) - len(joined)} of {len(sampled)} sampled frames have "
            "no truth frame: are the landmark table and the truth table of the "
            "same video?"
        )
    det_xy = landmarks_from_table(joined)
    true_xy = np.stack(
        [
            joined[[c + "_true" for c in LANDMARK_X]].to_numpy(float),
            joined[[c + "_true" for c in LANDMARK_Y]].to_numpy(float),
        ],
        axis=-1,
    )
    found = joined["detected"].astype(bool).to_numpy() & np.isfinite(det_xy).all(axis=(1, 2))
    det_m = landmark_measures(det_xy[found])
    true_all = landmark_measures(true_xy)
    true_m = true_all[found]
    errors = nme(det_xy[found], true_xy[found])
    n_sampled = len(sampled)
    out: dict[str, float] = {
        "frames_sampled": float(n_sampled),
        "frames_detected": float(sampled["detected"].astype(bool).sum()),
        "frames_matched": float(found.sum()),
        "detection_rate": (float(sampled["detected"].astype(bool).mean()) if n_sampled else 0.0),
    }
    for m in MEASURES:
        out[f"{m}_r"] = _pearson(det_m[m].to_numpy(), true_m[m].to_numpy())
    out["nme_median"] = _stat(errors, np.median)
    out["nme_p90"] = _stat(errors, lambda a: np.percentile(a, 90))
    for m in MEASURES:
        out[f"{m}_detected_sd"] = _stat(det_m[m], np.std)
        out[f"{m}_truth_sd"] = _stat(true_all[m], np.std)
        if m in GAP_MEASURES:
            out[f"{m}_truth_p05"] = _stat(true_all[m], lambda a: np.percentile(a, 5))
            out[f"{m}_truth_median"] = _stat(true_all[m], np.median)
            out[f"{m}_truth_p95"] = _stat(true_all[m], lambda a: np.percentile(a, 95))
            out[f"{m}_truth_min"] = _stat(true_all[m], np.min)
    return out


def cohort_legibility(
    pairs: Iterable[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Legibility over many videos.

    Args:
        pairs: (landmark table, truth frames table) paths, one pair per video.

    Returns:
        (videos, summary): one row per video (``session_id, speaker_id, status`` from the
        landmark table's metadata, then :func:`video_columns`; a video without a detected
        face has ``detection_rate`` 0 and NaN r) and the cohort summary
        (:func:`summarize_legibility`).
    """
    rows = []
    for lmk_path, truth_path in pairs:
        table, meta = read_table(lmk_path)
        truth, _ = read_table(truth_path)
        ids = {
            "session_id": str(meta.get("session_id", "")),
            "speaker_id": str(meta.get("speaker_id", "")),
            "status": str(meta.get("status", "")),
        }
        rows.append({**ids, **video_legibility(table, truth)})
    videos = pd.DataFrame(rows, columns=["session_id", "speaker_id", "status", *video_columns()])
    return videos, summarize_legibility(videos)


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _median(values: Any) -> float | None:
    return _json_float(_stat(values, np.median))


def check_targets(values: Mapping[str, float | None]) -> dict[str, dict[str, Any]]:
    """Each of :data:`TARGETS` judged on ``values`` (missing or NaN values fail)."""
    out = {}
    for name, (op, threshold) in TARGETS.items():
        raw = values.get(name)
        value = float(raw) if raw is not None and math.isfinite(raw) else None
        met = value is not None and (value >= threshold if op == ">=" else value <= threshold)
        out[name] = {"op": op, "threshold": threshold, "value": value, "met": met}
    return out


def summarize_legibility(videos: pd.DataFrame) -> dict[str, Any]:
    """Cohort summary of :func:`cohort_legibility`'s per-video table (JSON-ready: NaN is
    ``None``).

    Keys: ``videos``, ``videos_detected`` (with at least one scored frame), ``r_median``
    (measure -> median over videos), ``nme_median`` (median over videos of the per-video
    median), ``detection_rate`` (detected / sampled frames, all videos pooled),
    ``detection_rate_median`` (over videos), ``truth`` (measure -> median over videos of the
    truth's sd and, for :data:`GAP_MEASURES`, of its 5th and 95th percentile, plus the lowest
    value of any video and the number of videos whose truth goes below zero) and
    ``targets`` (:func:`check_targets`) with ``targets_met``.
    """
    sampled = float(videos["frames_sampled"].sum()) if len(videos) else 0.0
    detected = float(videos["frames_detected"].sum()) if len(videos) else 0.0
    truth: dict[str, dict[str, Any]] = {}
    for m in MEASURES:
        entry: dict[str, Any] = {"sd_median": _median(videos[f"{m}_truth_sd"])}
        if m in GAP_MEASURES:
            mins = _finite(videos[f"{m}_truth_min"])
            entry.update(
                {
                    "p05_median": _median(videos[f"{m}_truth_p05"]),
                    "median_median": _median(videos[f"{m}_truth_median"]),
                    "p95_median": _median(videos[f"{m}_truth_p95"]),
                    "min": _json_float(float(mins.min())) if len(mins) else None,
                    "videos_below_zero": int((mins < 0).sum()),
                }
            )
        truth[m] = entry
    summary: dict[str, Any] = {
        "videos": len(videos),
        "videos_detected": int((videos["frames_matched"] > 0).sum()),
        "measures": list(MEASURES),
        "r_median": {m: _median(videos[f"{m}_r"]) for m in MEASURES},
        "nme_median": _median(videos["nme_median"]),
        "detection_rate": _json_float(detected / sampled) if sampled else None,
        "detection_rate_median": _median(videos["detection_rate"]),
        "truth": truth,
    }
    values = {
        **{f"{m}_r": summary["r_median"][m] for m in MEASURES},
        "nme": summary["nme_median"],
        "detection_rate": summary["detection_rate"],
    }
    summary["targets"] = check_targets(values)
    summary["targets_met"] = sum(t["met"] for t in summary["targets"].values())
    summary["targets_total"] = len(TARGETS)
    return summary


def run_legibility(
    landmark_paths: Iterable[str | os.PathLike[str]],
    truth_frames: str | os.PathLike[str],
    outputs: Mapping[str, str | os.PathLike[str]],
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``legibility`` rule: :func:`cohort_legibility` of every landmark table against its
    video's truth, written to ``outputs["videos"]`` (table) and ``outputs["summary"]`` (JSON),
    both with ``provenance``.

    Args:
        landmark_paths: the landmark tables (``.../{session}/{speaker}.parquet``).
        truth_frames: the cohort's per-frame truth folder
            (:func:`facedyn.synthetic.layout.frames_dir`); each table's truth is
            :func:`facedyn.synthetic.layout.frame_table` of its ids.
        outputs: ``videos`` and ``summary`` paths.
        provenance: :func:`facedyn.runtime.provenance` of the job.

    Returns:
        The summary as written.
    """
    pairs = [(p, frame_table(truth_frames, *table_ids(p))) for p in landmark_paths]
    videos, summary = cohort_legibility(pairs)
    meta = {"provenance": dict(provenance or {})}
    write_table(videos, outputs["videos"], meta)
    summary["provenance"] = meta["provenance"]
    atomic_write_json(outputs["summary"], summary)
    log.info(
        "%d videos; median r %s; NME %s; detection %s; targets met %d of %d",
        summary["videos"],
        {m: None if r is None else round(r, 3) for m, r in summary["r_median"].items()},
        summary["nme_median"],
        summary["detection_rate"],
        summary["targets_met"],
        summary["targets_total"],
    )
    return summary


__all__ = [
    "GAP_MEASURES",
    "MEASURES",
    "TARGETS",
    "check_targets",
    "cohort_legibility",
    "face_axes",
    "landmark_measures",
    "landmarks_from_table",
    "run_legibility",
    "summarize_legibility",
    "video_columns",
    "video_legibility",
]
