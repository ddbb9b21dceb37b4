"""Quality control: the status of every manifest video, and why any is excluded.

``results/qc/videos.parquet`` has one row per manifest video (``session_id, speaker_id,
status`` (``ok`` | ``excluded``), ``reason, frames_sampled, frames_valid, median_nme``) plus
``reason_code``, a stable short code of the reason (:data:`REASON_CODES`) that the summary
counts by. Downstream stages use only ``ok`` videos and log the rest; nothing disappears
silently.

Checks, in order (the first that fails gives the reason): the manifest's video status
(missing, empty, unreadable file); the landmark table's status (no face, undecodable); two
or more faces in more than ``max_multi_face_fraction`` of the detector runs (whose dynamics
would the video hold?); the FLAME table's status (a tracker file that could not be
imported, no valid frame); the share and number of frames with a face.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from facedyn.names import table_ids
from facedyn.tables import read_table, write_table

log = logging.getLogger(__name__)

QC_COLUMNS = [
    "session_id",
    "speaker_id",
    "status",
    "reason",
    "frames_sampled",
    "frames_valid",
    "median_nme",
    "reason_code",
    "cohort",
]

#: ``reason_code`` values and what they mean (the summary's labels). Codes of the form
#: ``video_<status>``, ``landmarks_<status>`` and ``fit_<status>`` carry the manifest's, the
#: landmark table's or the FLAME table's status; ``truncated`` marks a kept (``ok``) video
#: whose decoding stopped early.
REASON_CODES: dict[str, str] = {
    "video_missing": "video file missing",
    "video_empty": "video file empty (0 bytes)",
    "video_unreadable": "video unreadable (corrupt, truncated or not a video)",
    "video_unreadable_metadata": "conversation metadata unreadable",
    "no_landmark_table": "no landmark table",
    "landmarks_no_face": "no face in any sampled frame",
    "landmarks_face_too_small": "faces too small for the detector's settings",
    "landmarks_unreadable": "no frame could be decoded",
    "landmarks_missing": "video missing when landmarks ran",
    "landmarks_empty": "video empty when landmarks ran",
    "multiple_faces": "two faces (speaker ambiguous)",
    "fit_import_failed": "tracker file could not be imported",
    "fit_no_valid_frames": "no valid FLAME frame",
    "fit_no_dense_landmarks": "landmark table without the dense points the fit needs",
    "few_face_frames": "face in too few sampled frames",
    "few_valid_frames": "too few frames with a face",
    "truncated": "kept: decoding stopped early (truncated file)",
}


def reason_label(code: str) -> str:
    """Human label of a ``reason_code`` (the code itself when unknown)."""
    return REASON_CODES.get(code, code)


def qc_row(
    manifest_row: Mapping[str, Any],
    landmarks_path: str | os.PathLike[str] | None,
    min_valid_fraction: float,
    min_valid_frames: int,
    flame_path: str | os.PathLike[str] | None = None,
    max_multi_face_fraction: float = 0.25,
) -> dict[str, Any]:
    """QC verdict for one video from its manifest row, landmark table and (when fitted)
    FLAME table, whose median landmark error (``nme``) is reported."""
    row: dict[str, Any] = {
        "session_id": manifest_row["session_id"],
        "speaker_id": manifest_row["speaker_id"],
        "status": "ok",
        "reason": "",
        "frames_sampled": 0,
        "frames_valid": 0,
        "median_nme": math.nan,
        "reason_code": "",
        "cohort": manifest_row.get("cohort") or "main",
    }

    def exclude(code: str, reason: str) -> dict[str, Any]:
        return {**row, "status": "excluded", "reason": reason, "reason_code": code}

    video_status = manifest_row.get("status", "ok")
    if video_status != "ok":
        return exclude(
            f"video_{video_status}", f"video {video_status}: {manifest_row.get('reason', '')}"
        )
    flame_meta: dict[str, Any] = {}
    if flame_path is not None and os.path.exists(flame_path):
        flame, flame_meta = read_table(flame_path, columns=["valid", "nme"])
        if flame["valid"].any():
            row["median_nme"] = float(flame.loc[flame["valid"], "nme"].median())
    if landmarks_path is None or not os.path.exists(landmarks_path):
        return exclude("no_landmark_table", "no landmark table")
    table, meta = read_table(landmarks_path, columns=["detected"])
    row["frames_sampled"] = len(table)
    row["frames_valid"] = int(table["detected"].sum()) if len(table) else 0
    status = meta.get("status", "ok")
    if status not in ("ok", "truncated"):
        return exclude(f"landmarks_{status}", f"landmarks {status}: {meta.get('reason', '')}")
    if status == "truncated":
        row["reason"] = meta.get("reason", "truncated")
        row["reason_code"] = "truncated"
    runs, multi = int(meta.get("detector_runs") or 0), int(meta.get("multi_face_runs") or 0)
    if runs and multi / runs > max_multi_face_fraction:
        return exclude(
            "multiple_faces",
            f"two faces (a second one as large as the speaker's) in {multi} of "
            f"{runs} detector runs ({multi / runs:.0%}; qc.max_multi_face_fraction "
            f"is {max_multi_face_fraction:.0%}): the video must show one speaker; "
            "crop it to the speaker or remove the row",
        )
    fit_status = flame_meta.get("status", "ok")
    if fit_status != "ok":
        return exclude(
            f"fit_{fit_status}", f"FLAME fit {fit_status}: {flame_meta.get('reason', '')}"
        )
    fraction = row["frames_valid"] / row["frames_sampled"] if row["frames_sampled"] else 0.0
    if fraction < min_valid_fraction:
        size = meta.get("face_px_median")
        seen = (
            f", faces of about {size:.0f} px (inter-ocular {meta.get('iod_px_median'):.0f} px)"
            if isinstance(size, int | float) and math.isfinite(size)
            else ""
        )
        return exclude(
            "few_face_frames",
            f"a face in only {fraction:.0%} of sampled frames{seen} "
            f"(qc.min_valid_fraction is {min_valid_fraction:.0%})",
        )
    if row["frames_valid"] < min_valid_frames:
        return exclude(
            "few_valid_frames",
            f"only {row['frames_valid']} frames with a face "
            f"(qc.min_valid_frames is {min_valid_frames})",
        )
    return row


def index_tables(paths: list[str]) -> dict[tuple[str, str], str]:
    """Map ``.../{session}/{speaker}.parquet`` paths by (session, speaker)
    (:func:`facedyn.names.table_ids`)."""
    return {table_ids(p): p for p in paths}


def build_qc(
    manifest: pd.DataFrame,
    landmark_paths: Mapping[tuple[str, str], str],
    min_valid_fraction: float = 0.5,
    min_valid_frames: int = 30,
    flame_paths: Mapping[tuple[str, str], str] | None = None,
    max_multi_face_fraction: float = 0.25,
) -> pd.DataFrame:
    """QC table for every manifest row; ``landmark_paths`` / ``flame_paths`` map
    (session, speaker) to tables."""
    flame_paths = flame_paths or {}
    rows = []
    for r in manifest.to_dict(orient="records"):
        key = (r["session_id"], r["speaker_id"])
        rows.append(
            qc_row(
                r,
                landmark_paths.get(key),
                min_valid_fraction,
                min_valid_frames,
                flame_paths.get(key),
                max_multi_face_fraction,
            )
        )
    qc = pd.DataFrame(rows, columns=QC_COLUMNS)
    excluded = qc[qc["status"] == "excluded"]
    log.info("QC: %d of %d videos ok, %d excluded", len(qc) - len(excluded), len(qc), len(excluded))
    for r in excluded.itertuples():
        log.warning("excluded %s/%s: %s", r.session_id, r.speaker_id, r.reason)
    return qc


def run_qc(
    manifest_path: str | os.PathLike[str],
    landmark_paths: Iterable[str],
    flame_paths: Iterable[str],
    out: str | os.PathLike[str],
    qc: Mapping[str, Any],
    provenance: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The ``qc`` rule: :func:`build_qc` over the manifest and the per-video landmark and
    FLAME tables (``.../{session}/{speaker}.parquet``), written to ``out`` with
    ``provenance`` in its metadata.

    Args:
        manifest_path: ``results/cohort/manifest.parquet``.
        landmark_paths, flame_paths: every manifest video's landmark and FLAME table.
        out: ``results/qc/videos.parquet``.
        qc: the ``qc`` config section (:func:`build_qc`'s thresholds).
        provenance: :func:`facedyn.runtime.provenance` of the job.
    """
    from facedyn.datasets.manifest import read_manifest

    table = build_qc(
        read_manifest(manifest_path),
        index_tables(list(landmark_paths)),
        flame_paths=index_tables(list(flame_paths)),
        **qc,
    )
    write_table(table, out, {"provenance": dict(provenance or {})})
    return table
