"""The manifest file: the configured dataset indexed, written and read back.

The manifest (``results/cohort/manifest.parquet``) has one row per speaker-session video
and the columns :data:`~facedyn.datasets.records.MANIFEST_COLUMNS`. :func:`build_manifest`
indexes the configured dataset (:mod:`~facedyn.datasets.candor` for a CANDOR corpus and the
synthetic cohort, :mod:`~facedyn.datasets.table` for a user's table) and the audit's control
cohorts; :func:`write_manifest` and :func:`read_manifest` keep its columns and dtypes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

import facedyn
from facedyn.datasets.candor import SKIPPED_ATTR, index_candor
from facedyn.datasets.records import (
    MAIN_COHORT,
    MANIFEST_COLUMNS,
    ManifestError,
    check_duplicates,
    normalize,
    sort_rows,
    status_counts,
    validate_ids,
)
from facedyn.datasets.table import index_table
from facedyn.runtime import provenance
from facedyn.synthetic import layout
from facedyn.tables import read_table, write_table

log = logging.getLogger(__name__)


def write_manifest(
    df: pd.DataFrame, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write the manifest atomically with :func:`facedyn.tables.write_table`.

    ``df`` is checked (columns, safe and unique ids) and written with exactly
    :data:`MANIFEST_COLUMNS`, rows sorted by (session_id, speaker_id). The file metadata is
    ``metadata`` (e.g. ``dataset_kind``, ``root`` or ``table``) plus ``n_rows``,
    ``n_sessions``, ``n_speakers``, ``status_counts`` and ``facedyn_version``.
    """
    if "cohort" not in df.columns:
        df = df.assign(cohort=MAIN_COHORT)  # an indexed dataset: all of it is the run's own
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"cannot write a manifest without column(s) {', '.join(missing)}")
    df = sort_rows(normalize(df))
    validate_ids(df)
    check_duplicates(df)
    meta = dict(metadata or {})
    meta.update(
        {
            "n_rows": len(df),
            "n_sessions": int(df["session_id"].nunique()),
            "n_speakers": int(df["speaker_id"].nunique()),
            "status_counts": status_counts(df),
            "facedyn_version": facedyn.__version__,
        }
    )
    return write_table(df, path, meta)


def read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a manifest written by :func:`write_manifest` (same columns and dtypes)."""
    df, _ = read_table(path)
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{path} is not a manifest: it lacks {', '.join(missing)}")
    return normalize(df)


def build_manifest(
    dataset_config: Mapping[str, Any],
    out_path: str | os.PathLike[str],
    synthetic_root: str | os.PathLike[str] | None = None,
    *,
    workers: int | None = None,
    config: Mapping[str, Any] | None = None,
    cohorts: Mapping[str, str | os.PathLike[str]] | None = None,
) -> pd.DataFrame:
    """Index the configured dataset, write the manifest to ``out_path`` and return it.

    ``dataset_config`` is the config's ``dataset`` mapping: ``kind: candor`` indexes
    ``root`` with :func:`index_candor`, ``kind: manifest`` indexes ``table`` with
    :func:`index_table`, ``kind: synthetic`` indexes ``synthetic_root`` (the generated cohort,
    written in CANDOR's layout) with :func:`index_candor`. ``workers`` threads probe videos.
    The metadata's ``provenance`` has the hash of the run's ``config`` and the fingerprint of
    what was indexed: the table (or the synthetic cohort's ``cohort.json``) and every video.
    Its rows have ``cohort`` :data:`MAIN_COHORT`; ``cohorts`` (name -> folder) adds the
    audit's generated control cohorts, indexed like a synthetic dataset, under their names.
    """
    kind = dataset_config.get("kind")

    def need(key: str) -> Any:
        value = dataset_config.get(key)
        if value in (None, ""):
            raise ManifestError(f"dataset.kind is {kind!r} but dataset.{key} is not set")
        return value

    if kind == "candor":
        root = need("root")
        df = index_candor(root, workers=workers)
        source = {"root": os.path.abspath(Path(root).expanduser())}
    elif kind == "manifest":
        table = need("table")
        df = index_table(table, workers=workers)
        source = {"table": os.path.abspath(Path(table).expanduser())}
    elif kind == "synthetic":
        if synthetic_root is None:
            raise ManifestError(
                "dataset.kind is 'synthetic' but no synthetic cohort folder was given"
            )
        df = index_candor(synthetic_root, workers=workers)
        source = {"root": os.path.abspath(synthetic_root)}
    else:
        raise ManifestError(f"unknown dataset.kind {kind!r}: use synthetic, candor or manifest")
    df = df.assign(cohort=MAIN_COHORT)
    extra = []
    for name, folder in (cohorts or {}).items():
        extra.append(index_candor(folder, workers=workers).assign(cohort=name))
        source.setdefault("cohorts", {})[name] = os.path.abspath(folder)
    if extra:
        df = pd.concat([df, *extra], ignore_index=True)
    indexed = [v for v in df["video"] if v is not None]
    if kind == "manifest":
        indexed.append(source["table"])
    elif kind == "synthetic" and layout.cohort_file(source["root"]).is_file():
        indexed.append(str(layout.cohort_file(source["root"])))
    meta = {
        "dataset_kind": kind,
        **source,
        "skipped_conversations": dict(df.attrs.get(SKIPPED_ATTR, {})),
        "provenance": provenance(config, inputs=indexed),
    }
    write_manifest(df, out_path, meta)
    counts = status_counts(df)
    log.info(
        "manifest %s: %d videos (%s), %d sessions, %d speakers",
        out_path,
        len(df),
        ", ".join(f"{k} {v}" for k, v in counts.items()),
        df["session_id"].nunique(),
        df["speaker_id"].nunique(),
    )
    if counts.get("ok", 0) < len(df):
        log.warning(
            "%d of %d videos are not usable; see the manifest's status and reason columns",
            len(df) - counts.get("ok", 0),
            len(df),
        )
    return df
