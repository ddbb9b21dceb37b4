"""Dynamics features of every video, kept in one array, with contiguous runs and gaps.

Features come from valid frames only: the first ``n_expr`` FLAME expression coefficients
and/or the jaw rotation (feature sets ``expr``, ``jaw``, ``expr_jaw``), optionally followed
by their first differences (``velocity``). Head pose, camera and shape never enter: the
point is identity from dynamics with static appearance removed.

The one exception is the ``shape`` set (the first ``n_shape`` shape coefficients), which is
not a dynamics feature set (:data:`FEATURE_SETS` does not list it) but the input of the
appearance-leak control (``facedyn.identify.baselines.ShapeOnly``): how well the discarded
identity parameters alone identify a speaker.

Frames are sampled at a fixed rate (``landmarks.fps``) from each video, so consecutive rows
of a FLAME table are one sampling step apart, unless a frame was lost. A *gap* is an invalid
row (no face, failed fit, non-finite parameter) or a jump in ``time_s`` / ``frame`` larger
than 1.5 sampling steps. The usable rows between gaps form *runs*; windows (``windows.py``)
and velocities never cross a run boundary.

All videos of a cohort live in one :class:`FeatureStore`: a float32 ``(N, F)`` array of the
usable rows of every video, back to back, with ``offsets`` saying where each video starts.
At CANDOR scale (31 M sampled frames, 53 features) that is 6.6 GB, one allocation, no
per-window files. Windows are (video, start row) integer pairs into it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

FEATURE_SETS = ("expr", "jaw", "expr_jaw")
#: The shape coefficients: only for the appearance-leak control, never a dynamics feature set.
SHAPE_SET = "shape"
#: Every set :func:`feature_columns` knows.
ALL_FEATURE_SETS = (*FEATURE_SETS, SHAPE_SET)
JAW_COLUMNS = ["jaw_0", "jaw_1", "jaw_2"]
#: A step longer than this many sampling steps is a gap.
GAP_FACTOR = 1.5
#: A video whose sampling rate differs from the cohort's by more than this is not used.
RATE_TOLERANCE = 0.02


def feature_columns(feature_set: str, n_expr: int, n_shape: int = 20) -> list[str]:
    """FLAME table columns of a feature set (``expr``, ``jaw``, ``expr_jaw``, or ``shape``:
    the first ``n_shape`` shape coefficients, for the appearance-leak control)."""
    if feature_set not in ALL_FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; choose one of {ALL_FEATURE_SETS}")
    if feature_set == SHAPE_SET:
        return [f"shape_{k:03d}" for k in range(n_shape)]
    expr = [f"expr_{k:03d}" for k in range(n_expr)]
    return {"expr": expr, "jaw": list(JAW_COLUMNS), "expr_jaw": [*expr, *JAW_COLUMNS]}[feature_set]


def feature_names(feature_set: str, n_expr: int, velocity: bool, n_shape: int = 20) -> list[str]:
    """Names of the feature columns of the store: the table columns, then ``d_<name>``."""
    cols = feature_columns(feature_set, n_expr, n_shape)
    return [*cols, *(f"d_{c}" for c in cols)] if velocity else cols


def nominal_step(values: np.ndarray) -> float:
    """The regular step of a sampled series (time or frame index), robust to gaps.

    The median positive step, refined as the mean of the steps shorter than 1.5 medians:
    sampling 25 fps down to 15 keeps frames 0, 2, 4, 5, 7, ... whose steps alternate 2 and 1
    (median 2) but average 5/3 frames = 1/15 s. NaN with fewer than two rows.
    """
    d = np.diff(np.asarray(values, dtype=np.float64))
    d = d[np.isfinite(d) & (d > 0)]
    if not len(d):
        return math.nan
    med = float(np.median(d))
    return float(d[d < GAP_FACTOR * med].mean())


def run_starts(frame: np.ndarray, time_s: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """For the usable rows (in table order), True where a new run starts.

    A usable row continues the run of the row before it only when that row is usable too
    and the steps in ``time_s`` and ``frame`` are positive and at most 1.5 nominal steps.
    """
    frame = np.asarray(frame, dtype=np.float64)
    time_s = np.asarray(time_s, dtype=np.float64)
    usable = np.asarray(usable, dtype=bool)
    n = len(usable)
    breaks = np.ones(n, dtype=bool)
    if n > 1:
        dt, df = np.diff(time_s), np.diff(frame)
        ok = usable[1:] & usable[:-1] & (dt > 0) & (df > 0)
        period, fstep = nominal_step(time_s), nominal_step(frame)
        if math.isfinite(period):
            ok &= dt <= GAP_FACTOR * period
        if math.isfinite(fstep):
            ok &= df <= GAP_FACTOR * fstep
        breaks[1:] = ~ok
    return breaks[usable]


@dataclass
class VideoRows:
    """The usable rows of one video: times, source frames, run starts and features."""

    time_s: np.ndarray
    frame: np.ndarray
    new_run: np.ndarray
    features: np.ndarray
    rate: float
    reason: str = ""


def video_rows(
    table: pd.DataFrame, columns: Sequence[str], velocity: bool = False, keep_features: bool = True
) -> VideoRows:
    """Usable rows of one FLAME table: ``valid`` and every feature finite.

    With ``velocity`` the first difference (row minus previous row, per sampling step) of
    every feature is appended; it is only defined inside a run, so the first row of every
    run is dropped and the next one starts the run. ``rate`` is the table's sampling rate
    (Hz) estimated from ``time_s``.
    """
    n = len(table)
    time_s = table["time_s"].to_numpy(np.float64) if n else np.zeros(0)
    frame = table["frame"].to_numpy(np.int64) if n else np.zeros(0, np.int64)
    x = table[list(columns)].to_numpy(np.float64) if n else np.zeros((0, len(columns)))
    usable = (table["valid"].to_numpy(bool) if n else np.zeros(0, bool)) & np.isfinite(x).all(1)
    rate = 1.0 / nominal_step(time_s) if n > 1 else math.nan
    new_run = run_starts(frame, time_s, usable)
    x, time_s, frame = x[usable], time_s[usable], frame[usable]
    if velocity:
        dx = np.zeros_like(x)
        dx[1:] = x[1:] - x[:-1]
        keep = ~new_run
        new_run = np.concatenate([[True], new_run[:-1]])[keep] if len(keep) else new_run
        x = np.concatenate([x, dx], axis=1)[keep]
        time_s, frame = time_s[keep], frame[keep]
    feats = x.astype(np.float32) if keep_features else np.zeros((len(x), 0), np.float32)
    reason = "" if len(time_s) else "no usable frame"
    return VideoRows(time_s, frame, new_run, feats, rate, reason)


@dataclass
class FeatureStore:
    """Usable rows of all videos of a cohort back to back (see the module docstring).

    Video ``v`` owns rows ``offsets[v]:offsets[v + 1]``; ``reason[v]`` is non-empty when the
    video contributes no row (excluded by QC, no usable frame, other sampling rate).
    ``rate`` is the cohort's sampling rate in Hz. A structure-only store (``keep_features=
    False``) has ``features`` of width 0 but still names the features it stands for.
    """

    session_id: np.ndarray
    speaker_id: np.ndarray
    reason: list[str]
    offsets: np.ndarray
    time_s: np.ndarray
    frame: np.ndarray
    new_run: np.ndarray
    features: np.ndarray
    feature_names: list[str]
    rate: float

    @property
    def n_videos(self) -> int:
        return len(self.session_id)

    def video_index(self) -> dict[tuple[str, str], int]:
        """(session_id, speaker_id) -> video index."""
        return {
            (s, p): i for i, (s, p) in enumerate(zip(self.session_id, self.speaker_id, strict=True))
        }

    def rows(self, video: int) -> slice:
        return slice(int(self.offsets[video]), int(self.offsets[video + 1]))

    def time_range(self, video: int) -> tuple[float, float]:
        """[first usable time, last usable time + one step] of a video (NaN when empty)."""
        r = self.rows(video)
        if r.stop == r.start:
            return math.nan, math.nan
        return float(self.time_s[r.start]), float(self.time_s[r.stop - 1] + 1.0 / self.rate)


def build_store(
    videos: Sequence[Mapping[str, Any]],
    rows: Sequence[VideoRows | None],
    feature_names_: Sequence[str],
    rate: float | None = None,
) -> FeatureStore:
    """Assemble a :class:`FeatureStore` from per-video rows (None: not usable, see the
    video's ``reason``). ``rate`` None: the median of the videos' own rates; videos sampled
    at another rate (more than 2 % off) keep no row and get a reason."""
    rates = [r.rate for r in rows if r is not None and len(r.time_s) and math.isfinite(r.rate)]
    if rate is None:
        rate = float(np.median(rates)) if rates else math.nan
    reasons, kept = [], []
    for v, r in zip(videos, rows, strict=True):
        reason = str(v.get("reason") or "")
        if not reason and r is None:
            reason = "not read"
        if not reason and r is not None:
            reason = r.reason
            if not reason and math.isfinite(r.rate) and abs(r.rate / rate - 1) > RATE_TOLERANCE:
                reason = f"sampled at {r.rate:.3g} fps, not the cohort's {rate:.3g} fps"
        reasons.append(reason)
        kept.append(r if not reason else None)
    n_feat = len(feature_names_)
    lengths = np.array([len(r.time_s) if r is not None else 0 for r in kept], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    width = next((r.features.shape[1] for r in kept if r is not None), n_feat)
    features = np.empty((int(offsets[-1]), width), dtype=np.float32)
    time_s = np.empty(int(offsets[-1]))
    frame = np.empty(int(offsets[-1]), dtype=np.int64)
    new_run = np.empty(int(offsets[-1]), dtype=bool)
    for i, r in enumerate(kept):
        if r is None:
            continue
        sl = slice(int(offsets[i]), int(offsets[i + 1]))
        features[sl], time_s[sl], frame[sl], new_run[sl] = r.features, r.time_s, r.frame, r.new_run
    for v, reason in zip(videos, reasons, strict=True):
        if reason:
            log.info("video %s/%s not used: %s", v["session_id"], v["speaker_id"], reason)
    return FeatureStore(
        session_id=np.array([str(v["session_id"]) for v in videos], dtype=object),
        speaker_id=np.array([str(v["speaker_id"]) for v in videos], dtype=object),
        reason=reasons,
        offsets=offsets,
        time_s=time_s,
        frame=frame,
        new_run=new_run,
        features=features,
        feature_names=list(feature_names_),
        rate=float(rate),
    )


def store_from_tables(
    videos: Sequence[Mapping[str, Any]],
    tables: Sequence[pd.DataFrame | None],
    feature_set: str = "expr_jaw",
    n_expr: int = 50,
    velocity: bool = False,
    rate: float | None = None,
    keep_features: bool = True,
    n_shape: int = 20,
) -> FeatureStore:
    """A store from in-memory FLAME tables (tests, notebooks); see :func:`load_store`."""
    column_lists = [list(t.columns) for t in tables if t is not None]
    if feature_set == SHAPE_SET:
        n_shape = available_count("shape", n_shape, column_lists)
    else:
        n_expr = available_expr(n_expr, column_lists)
    cols = feature_columns(feature_set, n_expr, n_shape)
    rows = [
        None if t is None or v.get("reason") else video_rows(t, cols, velocity, keep_features)
        for v, t in zip(videos, tables, strict=True)
    ]
    return build_store(videos, rows, feature_names(feature_set, n_expr, velocity, n_shape), rate)


def available_count(kind: str, n: int, column_lists: Iterable[Iterable[str]]) -> int:
    """``n`` clipped to the ``<kind>_`` columns (``expr``, ``shape``) every table has
    (logged when clipped)."""
    have = [sum(1 for c in cols if str(c).startswith(f"{kind}_")) for cols in column_lists]
    if have and min(have) < n:
        key, word = ("identify.n_expr", "expression") if kind == "expr" else (f"n_{kind}", kind)
        log.warning(
            "%s is %d but the FLAME tables hold %d %s coefficients; using %d",
            key,
            n,
            min(have),
            word,
            min(have),
        )
        return min(have)
    return n


def available_expr(n_expr: int, column_lists: Iterable[Iterable[str]]) -> int:
    """``n_expr`` clipped to the expression columns every table has (logged when clipped)."""
    return available_count("expr", n_expr, column_lists)


def load_store(
    videos: Sequence[Mapping[str, Any]],
    feature_set: str = "expr_jaw",
    n_expr: int = 50,
    velocity: bool = False,
    rate: float | None = None,
    keep_features: bool = True,
    n_shape: int = 20,
) -> FeatureStore:
    """Read FLAME tables into a :class:`FeatureStore`.

    ``videos``: mappings with ``session_id, speaker_id, path`` and optionally ``reason``
    (non-empty: not usable, e.g. excluded by QC; the table is not read). Only the needed
    columns are read, one table at a time. ``keep_features=False`` keeps the row structure
    only (times, runs), for building folds without holding the features in memory.
    ``n_shape``: the width of the ``shape`` set (the appearance-leak control's input).
    """
    import pyarrow.parquet as pq

    from facedyn.tables import read_table

    readable = [v for v in videos if not v.get("reason") and os.path.exists(v["path"])]
    schemas = [pq.read_schema(v["path"]).names for v in readable]
    if feature_set == SHAPE_SET:
        n_shape = available_count("shape", n_shape, schemas)
    else:
        n_expr = available_expr(n_expr, schemas)
    cols = feature_columns(feature_set, n_expr, n_shape)
    rows: list[VideoRows | None] = []
    for v in videos:
        if v.get("reason"):
            rows.append(None)
            continue
        table, _ = read_table(v["path"], columns=["frame", "time_s", "valid", *cols])
        rows.append(video_rows(table, cols, velocity, keep_features))
    return build_store(videos, rows, feature_names(feature_set, n_expr, velocity, n_shape), rate)
