"""The ``dnr`` and ``folds`` rules: read the QC table and the FLAME tables, write outputs.

Only videos whose QC status is ``ok`` count; the others keep a row in the outputs with the
QC reason, so nothing disappears silently.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from facedyn.atomic import atomic_write_json
from facedyn.dynamics.dnr import compute_dnr, shape_sessions_from_tables, spearman_check
from facedyn.dynamics.features import FeatureStore, load_store
from facedyn.dynamics.folds import (
    assert_no_leakage,
    build_folds,
    folds_metadata,
    summarize,
)
from facedyn.dynamics.windows import make_windows
from facedyn.identify.experiments import ExperimentSettings
from facedyn.qc import index_tables
from facedyn.synthetic.layout import frame_table
from facedyn.tables import read_table, write_table

log = logging.getLogger(__name__)


def qc_videos(
    qc_path: str | os.PathLike[str], flame_paths: Iterable[str], cohort: str = "main"
) -> list[dict[str, Any]]:
    """One entry per QC row of ``cohort``: ``session_id, speaker_id, path`` and ``reason``
    (empty when the video's status is ok, else why it is not used). Rows of other cohorts
    (the audit's controls beside the main dataset) are not listed."""
    qc, _ = read_table(qc_path)
    paths = index_tables(list(flame_paths))
    videos = []
    for r in qc.to_dict(orient="records"):
        if (r.get("cohort") or "main") != cohort:
            continue
        key = (r["session_id"], r["speaker_id"])
        reason = "" if r["status"] == "ok" else f"QC excluded: {r['reason']}"
        if not reason and key not in paths:
            reason = "no FLAME table"
        videos.append(
            {
                "session_id": key[0],
                "speaker_id": key[1],
                "path": paths.get(key, ""),
                "reason": reason,
            }
        )
    return videos


def run_dnr(
    qc_path: str | os.PathLike[str],
    flame_paths: Iterable[str],
    outputs: Mapping[str, str | os.PathLike[str]],
    n_shape: int = 20,
    standardize: bool = False,
    min_valid_frames: int = 30,
    truth_speakers: str | os.PathLike[str] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``outputs["sessions"]``, ``outputs["speakers"]`` and ``outputs["summary"]``.

    ``truth_speakers`` (synthetic cohort only): the generator's per-speaker table; the summary
    then gets a ``synthetic_check`` with the Spearman correlation of DNR and ``instability``.
    """
    sessions = shape_sessions_from_tables(qc_videos(qc_path, flame_paths), n_shape)
    result = compute_dnr(
        sessions, n_shape=n_shape, standardize=standardize, min_valid_frames=min_valid_frames
    )
    meta = {
        "n_shape": result.summary["n_shape"],
        "standardize": standardize,
        "min_valid_frames": min_valid_frames,
        "scale": result.summary["scale"],
        "units": "standardised (divided by the pooled within-session sd)"
        if standardize
        else "shape coefficients",
        "provenance": dict(provenance or {}),
    }
    write_table(result.sessions, outputs["sessions"], meta)
    write_table(result.speakers, outputs["speakers"], meta)
    summary = {**result.summary, "provenance": dict(provenance or {})}
    if truth_speakers is not None:
        truth = pd.read_parquet(truth_speakers)
        summary["synthetic_check"] = spearman_check(result.speakers, truth, "instability")
        log.info(
            "synthetic check: Spearman rho(DNR, instability) = %s (p = %s, n = %d)",
            summary["synthetic_check"]["spearman_rho"],
            summary["synthetic_check"]["spearman_p"],
            summary["synthetic_check"]["n_speakers"],
        )
    atomic_write_json(outputs["summary"], summary)
    return summary


def run_folds(
    qc_path: str | os.PathLike[str],
    flame_paths: Iterable[str],
    out: str | os.PathLike[str],
    settings: ExperimentSettings,
    provenance: Mapping[str, Any] | None = None,
    truth_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Folds of one experiment, checked for leakage, written to ``out``."""
    store = experiment_store(
        settings, qc_videos(qc_path, flame_paths, settings.cohort), truth_dir, keep_features=False
    )
    windows = make_windows(store, settings.window_s, settings.stride_s)
    log.info(
        "%s: %d windows of %d frames at %.3g fps from %d videos",
        settings.name,
        len(windows),
        windows.length,
        store.rate,
        store.n_videos,
    )
    folds = build_folds(
        store,
        windows,
        settings.protocol,
        settings.n_folds,
        settings.window_s,
        settings.train_fraction,
        settings.min_windows,
    )
    guard = settings.guard_s if settings.protocol == "within_session" else 0.0
    assert_no_leakage(folds, settings.protocol, store, windows, min_gap_s=guard)
    if not (folds["split"] == "test").any():
        log.warning(
            "%s: no test data in any fold; every video is excluded (reasons in %s)",
            settings.name,
            out,
        )
    meta = {
        **folds_metadata(settings.to_dict(), store),
        "window_frames": windows.length,
        "summary": summarize(folds),
        "provenance": dict(provenance or {}),
    }
    write_table(folds, out, meta)
    return folds


def truth_table(
    flame_path: str | os.PathLike[str], truth_path: str | os.PathLike[str]
) -> pd.DataFrame:
    """The synthetic cohort's true parameters at the frames the pipeline sampled for one
    video (the fitted table's ``frame`` column), every frame valid: the input of the
    ground-truth ceiling (``identify.*.source: truth``)."""
    fitted, _ = read_table(flame_path, columns=["frame", "time_s"])
    truth, _ = read_table(truth_path)
    params = [c for c in truth.columns if c.startswith(("shape_", "expr_", "jaw_", "rot_"))]
    table = fitted.merge(truth[["frame", *params]], on="frame", how="inner")
    if len(table) < len(fitted):
        raise ValueError(
            f"{truth_path} lacks {len(fitted) - len(table)} of the frames "
            f"sampled in {flame_path}: is it the same video?"
        )
    table.insert(2, "valid", True)
    return table


def experiment_store(
    settings: ExperimentSettings,
    videos: list[dict[str, Any]],
    truth_dir: str | os.PathLike[str] | None = None,
    feature_set: str | None = None,
    keep_features: bool = True,
):
    """The feature store of an experiment: fitted FLAME tables, or with ``source: truth``
    the cohort's truth at the same sampled frames (``truth_dir`` = ``truth/frames``)."""
    from facedyn.dynamics.features import store_from_tables

    feature_set = feature_set or settings.features
    velocity = settings.velocity if feature_set != "shape" else False
    if settings.source == "fitted":
        store = load_store(
            videos,
            feature_set,
            settings.n_expr,
            velocity,
            keep_features=keep_features,
            n_shape=settings.shape_n,
        )
    elif truth_dir is None:
        raise ValueError(
            f"experiment {settings.name!r} has source: truth, which exists only "
            "for the synthetic cohort (dataset.kind: synthetic)"
        )
    else:
        tables = [
            None
            if v.get("reason")
            else truth_table(v["path"], frame_table(truth_dir, v["session_id"], v["speaker_id"]))
            for v in videos
        ]
        store = store_from_tables(
            videos,
            tables,
            feature_set,
            settings.n_expr,
            velocity,
            keep_features=keep_features,
            n_shape=settings.shape_n,
        )
    return center_videos(store) if settings.center and feature_set != "shape" else store


def center_videos(store: FeatureStore) -> FeatureStore:
    """Subtract every video's own mean from its features, in place (``identify.center``).

    Removes static offsets, such as head shape leaking into fitted expression coefficients,
    and with them any identity carried by a speaker's resting expression: what is left is
    movement about the session's mean. Uses no label and no other video (like cepstral mean
    normalisation per utterance in speaker recognition), so it is applied to test videos too.
    """
    if store.features.shape[1] == 0:
        return store
    for v in range(store.n_videos):
        rows = store.rows(v)
        if rows.stop > rows.start:
            block = store.features[rows]
            block -= block.mean(axis=0, dtype=np.float64).astype(block.dtype)
    return store
