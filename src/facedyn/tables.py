"""Parquet tables with file-level metadata, written atomically.

Every table the pipeline writes goes through :func:`write_table`: id columns are kept as
strings (CANDOR user ids such as ``"5e32..."`` must never become floats), the file-level
metadata (backend, settings, status, provenance) is stored as JSON under the ``facedyn``
key of the Parquet schema metadata, and the file appears atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from facedyn.atomic import atomic_write

META_KEY = b"facedyn"
#: Columns that hold identifiers and are always stored as strings.
ID_COLUMNS = ("session_id", "speaker_id", "partner_id", "predicted_speaker_id")


def _as_id_strings(df: pd.DataFrame, id_columns: Iterable[str]) -> pd.DataFrame:
    df = df.copy()
    for col in id_columns:
        if col in df.columns:
            df[col] = (
                df[col]
                .map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
                .astype(object)
            )
    return df


def write_table(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    metadata: Mapping[str, Any] | None = None,
    id_columns: Iterable[str] = ID_COLUMNS,
) -> Path:
    """Write ``df`` to Parquet at ``path`` atomically, with JSON ``metadata``."""
    df = _as_id_strings(df, id_columns)
    table = pa.Table.from_pandas(df, preserve_index=False)
    for col in id_columns:
        if col in table.column_names and table.schema.field(col).type != pa.string():
            idx = table.column_names.index(col)
            table = table.set_column(idx, col, table.column(col).cast(pa.string()))
    meta = dict(table.schema.metadata or {})
    meta[META_KEY] = json.dumps(dict(metadata or {}), sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(meta)
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def read_table(
    path: str | os.PathLike[str], columns: list[str] | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a table written by :func:`write_table`: (data frame, metadata dict)."""
    pf = pq.ParquetFile(path)
    raw = (pf.schema_arrow.metadata or {}).get(META_KEY, b"{}")
    df = pf.read(columns=columns).to_pandas()
    return df, json.loads(raw)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Only the metadata of a table written by :func:`write_table` (no data read)."""
    raw = (pq.read_schema(path).metadata or {}).get(META_KEY, b"{}")
    return json.loads(raw)
