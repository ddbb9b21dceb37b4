"""The manifest's record, shared by every dataset indexer: its columns and their types, the
rules for ids, and the frame built from an indexer's rows by probing their videos.

Ids (``session_id``, ``speaker_id``, ``partner_id``) are strings everywhere, verbatim:
CANDOR user ids such as ``"5e32..."`` or a user's ``"00123"``/``"NA"`` never pass through a
number. Text columns of the frames are ``object`` columns holding ``str`` or ``None``
(unknown), the same with every pandas version and after
:func:`~facedyn.datasets.manifest.read_manifest`.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from facedyn.face.probe import VIDEO_STATUSES, VideoInfo, probe_video
from facedyn.names import SAFE_ID, is_safe_id
from facedyn.runtime import available_cpus

log = logging.getLogger(__name__)

#: The manifest's columns, in order: the contract in docs/pipeline.md, with ``partner_id``/``channel``
#: (None where unknown) and ``status``/``reason`` (why a listed video cannot be used).
MANIFEST_COLUMNS = [
    "session_id",
    "speaker_id",
    "video",
    "fps",
    "n_frames",
    "width",
    "height",
    "duration_s",
    "partner_id",
    "channel",
    "status",
    "reason",
    "cohort",
]
#: The ``cohort`` of the run's own dataset; the audit's control cohorts carry their names.
MAIN_COHORT = "main"
#: Every value the manifest's ``status`` column can take. ``unreadable_metadata``: a CANDOR
#: conversation whose participants are unknown
#: (see :func:`~facedyn.datasets.candor.index_candor`).
MANIFEST_STATUSES = (*VIDEO_STATUSES, "unreadable_metadata")
#: Ids become path components (``results/landmarks/{session}/{speaker}.parquet``) and
#: Snakemake wildcard values, so they are restricted to this pattern.
SAFE_ID_PATTERN = f"^{SAFE_ID}$"

_TEXT_COLUMNS = (
    "session_id",
    "speaker_id",
    "video",
    "partner_id",
    "channel",
    "status",
    "reason",
    "cohort",
)
_INT_COLUMNS = ("n_frames", "width", "height")
_FLOAT_COLUMNS = ("fps", "duration_s")
#: The manifest's key: one video per speaker and session.
KEY = ["session_id", "speaker_id"]
_MAX_LISTED = 20


class ManifestError(ValueError):
    """A whole-dataset problem that must stop the run (the message says what to fix)."""


def _is_missing(value: Any) -> bool:
    """None, ``pd.NA`` or a float NaN."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def cell_text(value: Any) -> str | None:
    """A cell as ``str`` or None (missing); never converts through a number."""
    return None if _is_missing(value) else str(value)


def listing(items: Sequence[str], limit: int = _MAX_LISTED) -> str:
    """The first ``limit`` items, comma-separated, and how many more there are."""
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def _default_workers(workers: int | None) -> int:
    """``workers`` or, when None, up to 8 of the CPUs this process may run on."""
    if workers is None:
        return max(1, min(8, available_cpus()))
    return max(1, int(workers))


def _probe_many(paths: Sequence[Path | None], workers: int | None) -> list[VideoInfo]:
    """Probe videos (None: no path given) in order; threads overlap file-system latency."""
    real = [p for p in paths if p is not None]
    n = _default_workers(workers)
    log.info("probing %d videos with %d thread(s)", len(real), n)
    if n > 1 and len(real) > 1:
        with ThreadPoolExecutor(max_workers=n) as pool:
            infos = iter(list(pool.map(probe_video, real)))
    else:
        infos = iter([probe_video(p) for p in real])
    no_path = VideoInfo(
        status="missing", reason="no video path given for this row: fill it in or remove the row"
    )
    return [no_path if p is None else next(infos) for p in paths]


def normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Manifest columns in order, with fixed dtypes: text as object (str/None), ints, floats."""
    out = pd.DataFrame(index=df.index)
    for col in MANIFEST_COLUMNS:
        if col in _TEXT_COLUMNS:
            values = df[col] if col in df.columns else [None] * len(df)
            out[col] = pd.Series([cell_text(v) for v in values], index=df.index, dtype=object)
        elif col in _INT_COLUMNS:
            out[col] = pd.to_numeric(df[col]).astype("int64")
        else:
            out[col] = pd.to_numeric(df[col]).astype("float64")
    out["cohort"] = out["cohort"].where(out["cohort"].notna(), MAIN_COHORT)
    return out


def sort_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by (session_id, speaker_id), stably, with a fresh index."""
    return df.sort_values(KEY, kind="mergesort", ignore_index=True)


def check_duplicates(df: pd.DataFrame, where: Callable[[list[Any]], str] | None = None) -> None:
    """ManifestError naming every (session_id, speaker_id) pair that occurs more than once."""
    dup = df.duplicated(KEY, keep=False)
    if not dup.any():
        return
    parts = []
    for (session, speaker), group in df[dup].groupby(KEY, sort=True):
        extra = f" ({where(list(group.index))})" if where else ""
        parts.append(f"({session!r}, {speaker!r}) x{len(group)}{extra}")
    raise ManifestError(
        f"{len(parts)} duplicated (session_id, speaker_id) pair(s): {listing(parts)}. "
        "Each speaker may have one video per session: remove the extra rows or give the "
        "sessions distinct ids."
    )


def validate_ids(df: pd.DataFrame, columns: Iterable[str] = ("session_id", "speaker_id")) -> None:
    """Raise :class:`ManifestError` unless every id in ``columns`` is safe as a path component.

    Ids must match :data:`SAFE_ID_PATTERN` (letters, digits, ``_ . -``; first character a
    letter or digit; no whitespace, no ``/``, not empty or missing) because they become
    ``results/landmarks/{session}/{speaker}.parquet`` and Snakemake wildcard values. Ids that
    differ only in letter case are accepted with a warning (they collide on case-insensitive
    file systems such as macOS's default).
    """
    problems = []
    for col in columns:
        if col not in df.columns:
            raise ManifestError(f"the manifest has no {col!r} column")
        bad = sorted(
            {
                "<missing>" if _is_missing(v) else repr(v)
                for v in df[col]
                if _is_missing(v) or not is_safe_id(v)
            }
        )
        if bad:
            problems.append(f"{col}: {listing(bad)}")
        folded = Counter(v.casefold() for v in set(df[col]) if isinstance(v, str))
        clashes = sorted(k for k, n in folded.items() if n > 1)
        if clashes:
            log.warning(
                "%s values differ only in letter case (they collide on case-insensitive "
                "file systems): %s",
                col,
                listing(clashes),
            )
    if problems:
        raise ManifestError(
            "unsafe ids (they become file-path components and Snakemake wildcards, so they must "
            f"match {SAFE_ID_PATTERN}): " + "; ".join(problems) + ". Rename them, or list the "
            "videos in a manifest table (dataset.kind: manifest) that maps them to safe ids."
        )


def probe_rows(
    rows: list[dict[str, Any]], workers: int | None, where: Callable[[list[Any]], str] | None = None
) -> pd.DataFrame:
    """Validate ids and pairs (before the slow part), probe the videos, build the frame.

    ``rows`` are an indexer's rows (session_id, speaker_id, video as a Path or None,
    partner_id, channel and optionally a ``note`` and a ``status`` that overrides the
    video's); ``where`` names the rows of a duplicated pair in the error message.
    """
    keys = pd.DataFrame([{k: r[k] for k in KEY} for r in rows], columns=KEY)
    validate_ids(keys)
    check_duplicates(keys, where)
    infos = _probe_many([r["video"] for r in rows], workers)
    records = []
    for row, info in zip(rows, infos, strict=True):
        status, reason = info.status, info.reason
        note = row.get("note") or ""
        if row.get("status"):  # a problem of the dataset's description takes precedence
            status = row["status"]
            reason = note + (
                f"; the video itself is {info.status}: {info.reason}" if not info.ok else ""
            )
        elif note:
            reason = f"{reason}; {note}" if reason else note
        records.append(
            {
                **info.as_dict(),
                "session_id": row["session_id"],
                "speaker_id": row["speaker_id"],
                "video": None if row["video"] is None else str(row["video"]),
                "partner_id": row.get("partner_id"),
                "channel": row.get("channel"),
                "status": status,
                "reason": reason,
            }
        )
    frame = pd.DataFrame.from_records(records, columns=MANIFEST_COLUMNS)
    return sort_rows(normalize(frame))


def status_counts(df: pd.DataFrame) -> dict[str, int]:
    """How many rows have each ``status``, by status name."""
    return {str(k): int(v) for k, v in sorted(Counter(df["status"]).items())}
