"""The table indexer: a user's CSV/TSV or Parquet table, one row per video -> manifest rows.

Every cell is read as text, so ids survive verbatim; a row's video is listed even when it is
missing or unreadable (:func:`index_table`). :func:`check_table` runs the same whole-table
checks without probing a video, cheap enough for the workflow's DAG to call.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from facedyn.datasets.records import (
    KEY,
    ManifestError,
    cell_text,
    check_duplicates,
    probe_rows,
    status_counts,
    validate_ids,
)

log = logging.getLogger(__name__)

#: Columns a user's table must have (``dataset.kind: manifest``) and may have.
REQUIRED_TABLE_COLUMNS = ("speaker_id", "session_id", "video")
OPTIONAL_TABLE_COLUMNS = ("partner_id", "channel")


def _read_parquet_table(path: Path) -> pd.DataFrame:
    table = pq.read_table(path)
    for name in (*REQUIRED_TABLE_COLUMNS, *OPTIONAL_TABLE_COLUMNS):
        if name not in table.column_names:
            continue
        typ = table.schema.field(name).type
        if pa.types.is_dictionary(typ):
            typ = typ.value_type
        if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_null(typ):
            continue
        if pa.types.is_integer(typ) and name != "video":
            log.info("%s: column %s is stored as %s; converting to strings", path, name, typ)
            continue
        raise ManifestError(
            f"column {name!r} of {path} is stored as {typ}, which may have lost "
            "the ids' original text (leading zeros, '1e5', ...): store it as "
            "strings"
        )
    columns = {}
    for name in table.column_names:
        values = table.column(name).to_pylist()  # python values: no float detour for strings
        columns[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns) if columns else pd.DataFrame(index=range(table.num_rows))


def _read_user_table(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        try:
            return _read_parquet_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise ManifestError(f"cannot read the Parquet table {path}: {exc}") from exc
    stem = name.removesuffix(".gz").removesuffix(".bz2").removesuffix(".xz").removesuffix(".zip")
    if not stem.endswith((".csv", ".tsv", ".txt")):
        raise ManifestError(f"{path}: unsupported table format; use .csv, .tsv or .parquet")
    try:
        return pd.read_csv(
            path,
            sep="\t" if stem.endswith(".tsv") else ",",
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
        )
    except pd.errors.EmptyDataError as exc:
        raise ManifestError(
            f"the table {path} is empty: it needs a header with "
            f"{', '.join(REQUIRED_TABLE_COLUMNS)} and one row per video"
        ) from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise ManifestError(f"cannot read the table {path}: {exc}") from exc


def _table_rows(table: str | os.PathLike[str]) -> tuple[Path, list[dict[str, Any]]]:
    """The table's path and its rows (ids verbatim, video paths resolved, not probed)."""
    path = Path(os.path.abspath(Path(table).expanduser()))
    if not path.is_file():
        raise ManifestError(
            f"manifest table {path} does not exist: set dataset.table to a "
            "CSV or Parquet file with columns "
            f"{', '.join(REQUIRED_TABLE_COLUMNS)}"
        )
    df = _read_user_table(path)
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED_TABLE_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(
            f"the table {path} lacks required column(s) {', '.join(missing)} "
            f"(it has: {', '.join(df.columns) or 'none'}); required: "
            f"{', '.join(REQUIRED_TABLE_COLUMNS)}"
        )
    if df.empty:
        raise ManifestError(f"the table {path} has no rows: list one video per row")
    ignored = [c for c in df.columns if c not in (*REQUIRED_TABLE_COLUMNS, *OPTIONAL_TABLE_COLUMNS)]
    if ignored:
        log.info("%s: ignoring column(s) %s", path, ", ".join(ignored))
    df = df.reset_index(drop=True)
    rows = []
    for i in range(len(df)):
        video = cell_text(df.at[i, "video"])
        video_path = None
        if video is not None and video.strip():
            video_path = Path(video).expanduser()
            if not video_path.is_absolute():
                video_path = path.parent / video_path
            video_path = Path(os.path.abspath(video_path))
        row = {
            "session_id": cell_text(df.at[i, "session_id"]),
            "speaker_id": cell_text(df.at[i, "speaker_id"]),
            "video": video_path,
        }
        for col in OPTIONAL_TABLE_COLUMNS:
            value = cell_text(df.at[i, col]) if col in df.columns else None
            row[col] = value if value else None  # an empty cell means unknown
        rows.append(row)
    return path, rows


def _row_numbers(idx: list[Any]) -> str:
    """The table's 1-based data rows of the frame index ``idx``."""
    return "rows " + ", ".join(str(i + 1) for i in idx)


def check_table(table: str | os.PathLike[str]) -> int:
    """Check a user's table without probing any video; return its number of rows.

    The whole-dataset checks of :func:`index_table` (the table exists and can be read, has
    the required columns and rows, safe ids, no repeated (session_id, speaker_id) pair), cheap
    enough to run while the workflow's DAG is built, so such a table stops the run before
    any job starts. Raises :class:`ManifestError` naming the problem and the fix.
    """
    _, rows = _table_rows(table)
    keys = pd.DataFrame([{k: r[k] for k in KEY} for r in rows], columns=KEY)
    validate_ids(keys)
    check_duplicates(keys, _row_numbers)
    return len(rows)


def index_table(table: str | os.PathLike[str], *, workers: int | None = None) -> pd.DataFrame:
    """Index a user's CSV/TSV or Parquet table with one row per speaker-session video.

    Required columns: ``speaker_id, session_id, video``; optional ``partner_id, channel``;
    other columns are ignored. Every cell is read as text (CSV: no NA parsing), so ids like
    ``"NA"``, ``"nan"``, ``"1e5"`` or ``"00123"`` survive verbatim; in a Parquet table id
    columns must be strings (integers are converted; floats are refused because their
    original text may be lost). Empty ``partner_id``/``channel`` cells mean unknown (None).
    Relative video paths are resolved against the table's folder (``~`` is expanded); a
    row without a video path is listed with status ``"missing"``.

    Raises :class:`ManifestError` when the table does not exist or cannot be read, lacks a
    required column, has no rows, contains unsafe ids, or repeats a (session_id, speaker_id)
    pair (the message names the pairs and their 1-based data rows). Rows are sorted by
    (session_id, speaker_id).
    """
    path, rows = _table_rows(table)
    out = probe_rows(rows, workers, where=_row_numbers)
    log.info(
        "table %s: %d videos, %d sessions, %d speakers; status %s",
        path,
        len(out),
        out["session_id"].nunique(),
        out["speaker_id"].nunique(),
        status_counts(out),
    )
    return out
