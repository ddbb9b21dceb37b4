"""Quality control: the status of every manifest video, and why any is excluded.

``results/qc/videos.parquet`` has one row per manifest video (``session_id, speaker_id,
status`` (``ok`` | ``excluded``), ``reason, frames_sampled, frames_valid, median_nme``).
Downstream stages use only ``ok`` videos and log the rest; nothing disappears silently.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

from facedyn.tables import read_table

log = logging.getLogger(__name__)

QC_COLUMNS = ["session_id", "speaker_id", "status", "reason", "frames_sampled", "frames_valid",
              "median_nme"]


def qc_row(manifest_row: Mapping[str, Any], landmarks_path: str | os.PathLike[str] | None,
           min_valid_fraction: float, min_valid_frames: int,
           flame_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """QC verdict for one video from its manifest row, landmark table and (when fitted)
    FLAME table, whose median landmark error (``nme``) is reported."""
    row: dict[str, Any] = {"session_id": manifest_row["session_id"],
                           "speaker_id": manifest_row["speaker_id"], "status": "ok", "reason": "",
                           "frames_sampled": 0, "frames_valid": 0, "median_nme": math.nan}

    def exclude(reason: str) -> dict[str, Any]:
        return {**row, "status": "excluded", "reason": reason}

    if manifest_row.get("status", "ok") != "ok":
        return exclude(f"video {manifest_row.get('status')}: {manifest_row.get('reason', '')}")
    if flame_path is not None and os.path.exists(flame_path):
        flame, _ = read_table(flame_path, columns=["valid", "nme"])
        if flame["valid"].any():
            row["median_nme"] = float(flame.loc[flame["valid"], "nme"].median())
    if landmarks_path is None or not os.path.exists(landmarks_path):
        return exclude("no landmark table")
    table, meta = read_table(landmarks_path, columns=["detected"])
    row["frames_sampled"] = len(table)
    row["frames_valid"] = int(table["detected"].sum()) if len(table) else 0
    status = meta.get("status", "ok")
    if status not in ("ok", "truncated"):
        return exclude(f"landmarks {status}: {meta.get('reason', '')}")
    if status == "truncated":
        row["reason"] = meta.get("reason", "truncated")
    fraction = row["frames_valid"] / row["frames_sampled"] if row["frames_sampled"] else 0.0
    if fraction < min_valid_fraction:
        return exclude(f"a face in only {fraction:.0%} of sampled frames "
                       f"(qc.min_valid_fraction is {min_valid_fraction:.0%})")
    if row["frames_valid"] < min_valid_frames:
        return exclude(f"only {row['frames_valid']} frames with a face "
                       f"(qc.min_valid_frames is {min_valid_frames})")
    return row


def index_tables(paths: list[str]) -> dict[tuple[str, str], str]:
    """Map ``.../{session}/{speaker}.parquet`` paths to (session, speaker)."""
    out = {}
    for p in paths:
        parts = os.path.normpath(p).split(os.sep)
        out[(parts[-2], parts[-1].removesuffix(".parquet"))] = p
    return out


def build_qc(manifest: pd.DataFrame, landmark_paths: Mapping[tuple[str, str], str],
             min_valid_fraction: float = 0.5, min_valid_frames: int = 30,
             flame_paths: Mapping[tuple[str, str], str] | None = None) -> pd.DataFrame:
    """QC table for every manifest row; ``landmark_paths`` / ``flame_paths`` map
    (session, speaker) to tables."""
    flame_paths = flame_paths or {}
    rows = []
    for r in manifest.to_dict(orient="records"):
        key = (r["session_id"], r["speaker_id"])
        rows.append(qc_row(r, landmark_paths.get(key), min_valid_fraction, min_valid_frames,
                           flame_paths.get(key)))
    qc = pd.DataFrame(rows, columns=QC_COLUMNS)
    excluded = qc[qc["status"] == "excluded"]
    log.info("QC: %d of %d videos ok, %d excluded", len(qc) - len(excluded), len(qc), len(excluded))
    for r in excluded.itertuples():
        log.warning("excluded %s/%s: %s", r.session_id, r.speaker_id, r.reason)
    return qc
