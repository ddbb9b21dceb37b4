"""Fixed-length windows over the runs of a :class:`~facedyn.dynamics.features.FeatureStore`.

A window is ``T = round(window_s * rate)`` consecutive usable rows of one run (so it never
contains an invalid frame nor spans a gap); starts advance by ``S = round(stride_s * rate)``
rows from the beginning of each run. Windows are two integer arrays, ``video`` and ``start``
(row within the video), so a million windows cost 12 MB; :func:`batch` gathers any subset as a
``(B, T, F)`` float32 array with one fancy-indexing call.

A window's time span is ``[time of its first row, time of its last row + 1 / rate)``; folds
select windows whose span lies inside a time range of a session. :class:`Normalizer` holds
the per-feature statistics of the rows a set of (training) windows covers.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from facedyn.dynamics.features import FeatureStore

#: Tolerance (seconds) on window/range boundaries: times are float sums of frame steps.
EPS_S = 1e-6


def window_frames(window_s: float, rate: float) -> int:
    """Rows per window: ``window_s`` seconds at ``rate`` Hz (at least 1)."""
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"sampling rate must be positive, got {rate}")
    return max(1, round(window_s * rate))


@dataclass(frozen=True)
class Windows:
    """Windows as (video index, start row within the video), all ``length`` rows long."""

    video: np.ndarray
    start: np.ndarray
    length: int

    def __len__(self) -> int:
        return len(self.video)

    def subset(self, index: np.ndarray) -> Windows:
        """The windows selected by a boolean mask or an integer index."""
        return Windows(self.video[index], self.start[index], self.length)

    def concat(self, other: Windows) -> Windows:
        """These windows followed by ``other``'s (both of the same length)."""
        if other.length != self.length:
            raise ValueError(f"cannot join windows of {self.length} and {other.length} rows")
        return Windows(
            np.concatenate([self.video, other.video]),
            np.concatenate([self.start, other.start]),
            self.length,
        )

    def first_rows(self, store: FeatureStore) -> np.ndarray:
        """Row of every window's first frame in the store's concatenated arrays."""
        return store.offsets[self.video] + self.start

    def times(self, store: FeatureStore) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) time of every window in seconds (end exclusive, one step after the
        last row)."""
        first = self.first_rows(store)
        return store.time_s[first], store.time_s[first + self.length - 1] + 1.0 / store.rate


def shift_room(windows: Windows) -> np.ndarray:
    """How many rows each window may slide forward and still lie inside the union of
    ``windows`` without crossing a gap: up to the next window of the same video when the two
    overlap (their union is then gap-free, since neither contains a gap), else 0.

    Training crops windows at random offsets within this room (``identify.train.random_crop``):
    many more distinct windows from the same frames, and never a frame outside the given
    windows, so a fold's training data stays exactly the frames its windows cover.
    """
    room = np.zeros(len(windows), np.int64)
    if len(windows) < 2:
        return room
    order = np.lexsort((windows.start, windows.video))
    video, start = windows.video[order], windows.start[order]
    step = np.diff(start)
    adjacent = (video[1:] == video[:-1]) & (step > 0) & (step < windows.length)
    room[order[:-1]] = np.where(adjacent, step, 0)
    return room


def make_windows(store: FeatureStore, window_s: float, stride_s: float) -> Windows:
    """Every window of every video: ``window_s`` long, starts ``stride_s`` apart within each
    run, never crossing a run boundary (a gap)."""
    length = window_frames(window_s, store.rate)
    stride = window_frames(stride_s, store.rate)
    n = len(store.new_run)
    if n == 0:
        return Windows(np.zeros(0, np.int32), np.zeros(0, np.int64), length)
    starts = np.flatnonzero(store.new_run)
    # runs never cross videos: the first row of every non-empty video starts a run
    video_first = store.offsets[:-1][np.diff(store.offsets) > 0]
    run_bounds = np.union1d(starts, video_first)
    run_end = np.append(run_bounds[1:], n)
    run_len = run_end - run_bounds
    n_win = np.where(run_len >= length, (run_len - length) // stride + 1, 0)
    first = np.repeat(run_bounds, n_win) + stride * _ranges(n_win)
    video = (np.searchsorted(store.offsets, first, side="right") - 1).astype(np.int32)
    return Windows(video, (first - store.offsets[video]).astype(np.int64), length)


def _ranges(counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(c) for c in counts])`` without a Python loop."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(counts)
    return np.arange(total, dtype=np.int64) - np.repeat(ends - counts, counts)


def batch(
    store: FeatureStore,
    windows: Windows,
    index: np.ndarray | None = None,
    normalizer: Normalizer | None = None,
) -> np.ndarray:
    """Features of windows (all, or those picked by ``index``) as a (B, T, F) float32 array,
    normalised when a :class:`Normalizer` is given."""
    w = windows if index is None else windows.subset(index)
    rows = w.first_rows(store)[:, None] + np.arange(w.length)[None, :]
    x = store.features[rows]
    return normalizer.apply(x) if normalizer is not None else x


def in_ranges(store: FeatureStore, windows: Windows, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Mask of windows whose span lies in ``[lo[video], hi[video]]`` (per-video arrays; NaN:
    no range, nothing selected)."""
    t0, t1 = windows.times(store)
    a, b = lo[windows.video], hi[windows.video]
    return (t0 >= a - EPS_S) & (t1 <= b + EPS_S)


def count_windows(
    store: FeatureStore,
    windows: Windows,
    video: np.ndarray,
    start_s: np.ndarray,
    stop_s: np.ndarray,
) -> np.ndarray:
    """For every (video, start_s, stop_s) triple, the number of windows of that video whose
    span lies inside ``[start_s, stop_s]`` (0 for NaN bounds)."""
    order = np.lexsort((windows.start, windows.video))
    w = windows.subset(order)
    t0, t1 = w.times(store)
    bounds = np.searchsorted(w.video, np.arange(store.n_videos + 1), side="left")
    out = np.zeros(len(video), dtype=np.int64)
    for i, (v, a, b) in enumerate(zip(video, start_s, stop_s, strict=True)):
        if not (math.isfinite(a) and math.isfinite(b)):
            continue
        lo, hi = bounds[v], bounds[v + 1]
        first = lo + np.searchsorted(t0[lo:hi], a - EPS_S, side="left")
        stop = lo + np.searchsorted(t1[lo:hi], b + EPS_S, side="right")
        out[i] = max(0, stop - first)
    return out


# --- the training windows' normalisation -------------------------------------------------


@dataclass(frozen=True)
class Normalizer:
    """Per-feature mean and standard deviation, fitted on training rows only."""

    feature_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    n_rows: int
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(cls, store: FeatureStore, windows: Windows, min_std: float = 1e-6) -> Normalizer:
        """Statistics over the rows covered by ``windows`` (each row counted once), so a
        frame in several overlapping windows does not weigh more. Pass training windows."""
        mask = covered_rows(store, windows)
        x = store.features[mask].astype(np.float64)
        if not len(x):
            raise ValueError("no training rows to fit the normalisation on")
        mean, std = x.mean(axis=0), x.std(axis=0)
        std = np.where(std < min_std, 1.0, std)
        return cls(
            tuple(store.feature_names), tuple(mean.tolist()), tuple(std.tolist()), int(mask.sum())
        )

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean) / std`` over the last axis, as float32."""
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return ((np.asarray(x, dtype=np.float32) - mean) / std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["feature_names"], d["mean"], d["std"] = (
            list(self.feature_names),
            list(self.mean),
            list(self.std),
        )
        return d

    def save(self, path: str | os.PathLike[str]) -> None:
        from facedyn.atomic import atomic_write_json

        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Normalizer:
        with open(path) as fh:
            d = json.load(fh)
        return cls(
            tuple(d["feature_names"]),
            tuple(d["mean"]),
            tuple(d["std"]),
            int(d["n_rows"]),
            dict(d.get("extra", {})),
        )


def covered_rows(store: FeatureStore, windows: Windows) -> np.ndarray:
    """Boolean mask over the store's rows: True where some window covers the row."""
    n = len(store.time_s)
    diff = np.zeros(n + 1, dtype=np.int64)
    first = store.offsets[windows.video] + windows.start
    np.add.at(diff, first, 1)
    np.add.at(diff, first + windows.length, -1)
    return np.cumsum(diff[:-1]) > 0
