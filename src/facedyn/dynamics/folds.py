"""Cross-validation folds of the identification protocols, and leakage checks.

The folds table (``results/identify/{experiment}/folds.parquet``) has one row per
``(fold, speaker_id, session_id, split)`` with ``split`` in ``train | test | excluded``, the
time range ``[start_time_s, stop_time_s]`` of the split within that session, the number of
windows inside it (``n_windows``) and a ``reason`` for excluded rows. Windows are not stored:
:func:`fold_windows` expands a fold's rows into window index arrays of a
:class:`~facedyn.dynamics.features.FeatureStore` (any window whose span lies inside the row's
time range).

Protocols (docs/pipeline.md):

- ``cross_session``: speakers with at least two usable sessions. With a speaker's usable
  sessions sorted by ``session_id`` (``K_s`` of them), fold ``k`` (``0 .. n_folds-1``) tests
  ``sessions[k mod K_s]`` and trains on the others. With ``K_s == n_folds`` every session is
  tested exactly once. A speaker with fewer sessions than folds is still tested in every fold
  (the modulo wraps around, so some sessions are tested twice, each time trained on the
  others); one with more sessions than folds has sessions that are never tested (always
  trained). A usable session has QC status ok and at least ``min_windows`` windows.
- ``within_session``: one fold (``fold`` 0). Every usable session is split in time: with
  ``[t0, t1]`` the span of its usable frames, train is ``[t0, t0 + f (t1 - t0)]`` and test is
  ``[t0 + f (t1 - t0) + guard, t1]``, ``f = train_fraction``, ``guard`` = one window length.
  Windows lie entirely inside a part, so none straddles the split or the guard. A session
  with fewer than ``min_windows`` windows in either part is excluded.

Excluded (speaker, session) pairs appear in every fold with ``split = excluded``.
Nothing is random: folds are a function of the data and the settings.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from facedyn.dynamics.features import FeatureStore
from facedyn.dynamics.windows import EPS_S, Windows, count_windows, in_ranges

log = logging.getLogger(__name__)

FOLD_COLUMNS = [
    "fold",
    "speaker_id",
    "session_id",
    "split",
    "start_time_s",
    "stop_time_s",
    "n_windows",
    "reason",
]
SPLITS = ("train", "val", "test", "excluded")


class LeakageError(AssertionError):
    """Test data overlaps training data."""


def _session_ranges(store: FeatureStore) -> tuple[np.ndarray, np.ndarray]:
    lo = np.full(store.n_videos, np.nan)
    hi = np.full(store.n_videos, np.nan)
    for v in range(store.n_videos):
        lo[v], hi[v] = store.time_range(v)
    return lo, hi


def _finish(rows: list[dict[str, Any]], store: FeatureStore, windows: Windows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=[*FOLD_COLUMNS, "_video"])
    df["n_windows"] = count_windows(
        store,
        windows,
        df["_video"].to_numpy(np.int64),
        df["start_time_s"].to_numpy(np.float64),
        df["stop_time_s"].to_numpy(np.float64),
    )
    order = {s: i for i, s in enumerate(SPLITS)}
    df = df.assign(_split=df["split"].map(order))
    df = df.sort_values(["fold", "speaker_id", "_split", "session_id"], kind="stable")
    df = df.drop(columns=["_video", "_split"]).reset_index(drop=True)
    return df.astype(
        {
            "fold": np.int64,
            "n_windows": np.int64,
            "start_time_s": np.float64,
            "stop_time_s": np.float64,
        }
    )


def cross_session_folds(
    store: FeatureStore, windows: Windows, n_folds: int, min_windows: int = 2
) -> pd.DataFrame:
    """Folds of the ``cross_session`` protocol (module docstring)."""
    lo, hi = _session_ranges(store)
    n_win = count_windows(store, windows, np.arange(store.n_videos), lo, hi)
    reasons = list(store.reason)
    for v in range(store.n_videos):
        if not reasons[v] and n_win[v] < min_windows:
            reasons[v] = f"only {n_win[v]} windows (identify min_windows is {min_windows})"
    by_speaker: dict[str, list[int]] = {}
    for v in range(store.n_videos):
        by_speaker.setdefault(store.speaker_id[v], []).append(v)
    rows: list[dict[str, Any]] = []

    def row(fold: int, v: int, split: str, reason: str = "") -> dict[str, Any]:
        return {
            "fold": fold,
            "speaker_id": store.speaker_id[v],
            "session_id": store.session_id[v],
            "split": split,
            "start_time_s": lo[v],
            "stop_time_s": hi[v],
            "n_windows": 0,
            "reason": reason,
            "_video": v,
        }

    for speaker in sorted(by_speaker):
        videos = sorted(by_speaker[speaker], key=lambda v: store.session_id[v])
        usable = [v for v in videos if not reasons[v]]
        for v in videos:
            if reasons[v]:
                rows.extend(row(k, v, "excluded", reasons[v]) for k in range(n_folds))
        if len(usable) < 2:
            why = (
                f"speaker has {len(usable)} usable session"
                f"{'' if len(usable) == 1 else 's'} (cross_session needs 2)"
            )
            rows.extend(row(k, v, "excluded", why) for v in usable for k in range(n_folds))
            continue
        for k in range(n_folds):
            test = usable[k % len(usable)]
            rows.extend(row(k, v, "test" if v == test else "train") for v in usable)
    return _finish(rows, store, windows)


def within_session_folds(
    store: FeatureStore,
    windows: Windows,
    window_s: float,
    train_fraction: float = 0.8,
    min_windows: int = 2,
    guard_s: float | None = None,
) -> pd.DataFrame:
    """The single fold of the ``within_session`` protocol (module docstring)."""
    guard = float(window_s if guard_s is None else guard_s)
    lo, hi = _session_ranges(store)
    split = lo + train_fraction * (hi - lo)
    videos = np.arange(store.n_videos)
    n_train = count_windows(store, windows, videos, lo, split)
    n_test = count_windows(store, windows, videos, split + guard, hi)
    rows: list[dict[str, Any]] = []
    order = sorted(videos, key=lambda v: (store.speaker_id[v], store.session_id[v]))
    for v in order:
        base = {
            "fold": 0,
            "speaker_id": store.speaker_id[v],
            "session_id": store.session_id[v],
            "n_windows": 0,
            "reason": "",
            "_video": v,
        }
        reason = store.reason[v]
        if not reason and min(n_train[v], n_test[v]) < min_windows:
            reason = (
                f"{n_train[v]} training and {n_test[v]} test windows "
                f"(identify min_windows is {min_windows})"
            )
        if reason:
            rows.append(
                {
                    **base,
                    "split": "excluded",
                    "start_time_s": lo[v],
                    "stop_time_s": hi[v],
                    "reason": reason,
                }
            )
            continue
        rows.append({**base, "split": "train", "start_time_s": lo[v], "stop_time_s": split[v]})
        rows.append(
            {**base, "split": "test", "start_time_s": split[v] + guard, "stop_time_s": hi[v]}
        )
    return _finish(rows, store, windows)


def build_folds(
    store: FeatureStore,
    windows: Windows,
    protocol: str,
    n_folds: int = 3,
    window_s: float = 8.0,
    train_fraction: float = 0.8,
    min_windows: int = 2,
) -> pd.DataFrame:
    """Folds table of ``protocol`` (``cross_session`` or ``within_session``)."""
    if protocol == "cross_session":
        folds = cross_session_folds(store, windows, n_folds, min_windows)
    elif protocol == "within_session":
        folds = within_session_folds(store, windows, window_s, train_fraction, min_windows)
    else:
        raise ValueError(f"unknown protocol {protocol!r}")
    return folds


def summarize(folds: pd.DataFrame) -> dict[str, Any]:
    """Counts per fold and split (logged); the speakers excluded and why."""
    used = folds[folds["split"] != "excluded"]
    info: dict[str, Any] = {
        "n_folds": int(folds["fold"].nunique()) if len(folds) else 0,
        "n_speakers": int(used["speaker_id"].nunique()),
        "per_fold": {},
    }
    for (fold, split), g in used.groupby(["fold", "split"]):
        info["per_fold"].setdefault(int(fold), {})[split] = {
            "sessions": len(g),
            "windows": int(g["n_windows"].sum()),
        }
    excluded = folds[(folds["split"] == "excluded") & (folds["fold"] == folds["fold"].min())]
    info["excluded"] = {f"{r.session_id}/{r.speaker_id}": r.reason for r in excluded.itertuples()}
    log.info("folds: %d speakers; %s", info["n_speakers"], info["per_fold"])
    for key, reason in info["excluded"].items():
        log.info("excluded %s: %s", key, reason)
    return info


def _row_ranges(store: FeatureStore, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    index = store.video_index()
    lo = np.full(store.n_videos, np.nan)
    hi = np.full(store.n_videos, np.nan)
    for r in rows.itertuples():
        v = index.get((r.session_id, r.speaker_id))
        if v is None:
            raise KeyError(f"{r.session_id}/{r.speaker_id} of the folds table is not in the store")
        if not math.isnan(lo[v]):
            raise ValueError(f"{r.session_id}/{r.speaker_id} has two rows of one fold and split")
        lo[v], hi[v] = r.start_time_s, r.stop_time_s
    return lo, hi


def fold_windows(
    folds: pd.DataFrame, fold: int, split: str, store: FeatureStore, windows: Windows
) -> Windows:
    """The windows of one fold and split: those inside the time range of one of its rows."""
    rows = folds[(folds["fold"] == fold) & (folds["split"] == split)]
    lo, hi = _row_ranges(store, rows)
    return windows.subset(in_ranges(store, windows, lo, hi))


def validation_split(
    folds: pd.DataFrame,
    fold: int,
    window_s: float,
    stride_s: float = 0.0,
    val_fraction: float = 0.1,
    guard_s: float | None = None,
    store: FeatureStore | None = None,
    windows: Windows | None = None,
) -> pd.DataFrame:
    """One fold's rows with a validation part taken from every training row (for early
    stopping): the last ``val_fraction`` of the row's time range, at least ``window_s +
    stride_s`` long (room for a window whatever the stride grid), becomes ``split = val``; the training part ends ``guard_s`` (default one window) before it.
    A training row too short for that stays training only. Test and excluded rows are
    unchanged. ``n_windows`` is recounted when ``store`` and ``windows`` are given (else -1).
    """
    guard = float(window_s if guard_s is None else guard_s)
    out = []
    for r in folds[folds["fold"] == fold].to_dict(orient="records"):
        if r["split"] != "train":
            out.append(r)
            continue
        start, stop = r["start_time_s"], r["stop_time_s"]
        val_len = max(val_fraction * (stop - start), window_s + stride_s)
        train_stop = stop - val_len - guard
        if train_stop - start < window_s - EPS_S:
            out.append({**r, "reason": "too short for a validation part"})
            continue
        out.append({**r, "stop_time_s": train_stop})
        out.append({**r, "split": "val", "start_time_s": stop - val_len})
    df = pd.DataFrame(out, columns=FOLD_COLUMNS)
    if store is not None and windows is not None:
        index = store.video_index()
        video = np.array(
            [index[(s, p)] for s, p in zip(df["session_id"], df["speaker_id"], strict=True)],
            dtype=np.int64,
        )
        df["n_windows"] = count_windows(
            store,
            windows,
            video,
            df["start_time_s"].to_numpy(np.float64),
            df["stop_time_s"].to_numpy(np.float64),
        )
    else:
        df["n_windows"] = -1
    return df.reset_index(drop=True)


def _conflicts(
    ga: np.ndarray,
    a0: np.ndarray,
    a1: np.ndarray,
    gb: np.ndarray,
    b0: np.ndarray,
    b1: np.ndarray,
    min_gap: float,
) -> np.ndarray:
    """For every interval [b0, b1) of group ``gb``: does an interval [a0, a1) of the same group
    (``ga``) overlap it or come closer than ``min_gap``? Vectorised over all groups at once:
    times are shifted by ``group * L`` with ``L`` larger than any time plus two gaps, so
    intervals of different groups are always far apart; then, with the a intervals sorted by
    start, the latest end among those starting before ``b1 + min_gap`` must stay ``min_gap``
    before ``b0``."""
    if not len(a0) or not len(b0):
        return np.zeros(len(b0), dtype=bool)
    tol = 10 * EPS_S  # window bounds match ranges within EPS_S on either side
    span = float(
        max(
            np.nanmax(np.abs(a1)),
            np.nanmax(np.abs(b1)),
            np.nanmax(np.abs(a0)),
            np.nanmax(np.abs(b0)),
        )
    )
    shift = 2 * span + 2 * min_gap + 1.0
    A0, A1 = ga * shift + a0, ga * shift + a1
    B0, B1 = gb * shift + b0, gb * shift + b1
    order = np.argsort(A0, kind="stable")
    A0, A1 = A0[order], np.maximum.accumulate(A1[order])
    n_before = np.searchsorted(A0, B1 + min_gap - tol, side="left")
    latest_end = A1[np.maximum(n_before - 1, 0)]
    return (n_before > 0) & (latest_end > B0 - min_gap + tol)


PAIRS = (("train", "test"), ("val", "test"), ("train", "val"))


def assert_no_leakage(
    folds: pd.DataFrame,
    protocol: str,
    store: FeatureStore | None = None,
    windows: Windows | None = None,
    min_gap_s: float = 0.0,
) -> None:
    """Raise :class:`LeakageError` if test data of a fold overlaps its training data.

    Checks, for every fold and every (speaker, session) pair of rows with different splits
    among ``train``, ``val`` and ``test``: (1) for ``cross_session``, a speaker's test session
    is not among their training (or validation) sessions; (2) the rows' time ranges do not
    overlap or come closer than ``min_gap_s``; (3) with ``store`` and ``windows``, no window
    of one split overlaps (or comes closer than ``min_gap_s`` to) a window of another split
    of the same session. ``min_gap_s``: the guard of ``within_session`` (one window).
    Vectorised: CANDOR-sized folds (thousands of sessions, a million windows) take seconds.
    """
    used = folds[folds["split"].isin(["train", "val", "test"])]
    keys = ["fold", "speaker_id", "session_id"]
    dup = used.duplicated([*keys, "split"])
    if dup.any():
        raise LeakageError(
            f"duplicate rows in the folds table: {used[dup].head().to_dict('records')}"
        )
    if protocol == "cross_session":
        test = used[used["split"] == "test"]
        trained = used[used["split"] != "test"]
        both = test.merge(trained, on=keys)
        if len(both):
            r = both.iloc[0]
            raise LeakageError(
                f"fold {r['fold']}: test session {r['session_id']} of speaker "
                f"{r['speaker_id']} is also in training ({len(both)} such)"
            )
    for a, b in PAIRS:
        m = used[used["split"] == a].merge(used[used["split"] == b], on=keys, suffixes=("_a", "_b"))
        if not len(m):
            continue
        group = np.arange(len(m))
        bad = _conflicts(
            group,
            m["start_time_s_a"].to_numpy(float),
            m["stop_time_s_a"].to_numpy(float),
            group,
            m["start_time_s_b"].to_numpy(float),
            m["stop_time_s_b"].to_numpy(float),
            min_gap_s,
        )
        if bad.any():
            r = m[bad].iloc[0]
            raise LeakageError(
                f"fold {r['fold']}, {r['session_id']}/{r['speaker_id']}: {b} range "
                f"[{r['start_time_s_b']:.3f}, {r['stop_time_s_b']:.3f}] overlaps or is within "
                f"{min_gap_s} s of the {a} range [{r['start_time_s_a']:.3f}, "
                f"{r['stop_time_s_a']:.3f}]"
            )
    if store is None or windows is None:
        return
    for fold in sorted(used["fold"].unique()):
        parts = {
            s: fold_windows(folds, int(fold), s, store, windows) for s in ("train", "val", "test")
        }
        for a, b in PAIRS:
            wa, wb = parts[a], parts[b]
            if not len(wa) or not len(wb):
                continue
            bad = _conflicts(wa.video, *wa.times(store), wb.video, *wb.times(store), min_gap_s)
            if bad.any():
                v = int(wb.video[np.argmax(bad)])
                raise LeakageError(
                    f"fold {fold}, {store.session_id[v]}/{store.speaker_id[v]}: "
                    f"a {b} window overlaps or is within {min_gap_s} s of a "
                    f"{a} window"
                )


def folds_metadata(settings: Mapping[str, Any], store: FeatureStore) -> dict[str, Any]:
    """File metadata of the folds table: the settings the windows depend on."""
    return {
        "settings": dict(settings),
        "rate_hz": store.rate,
        "feature_names": list(store.feature_names),
    }
