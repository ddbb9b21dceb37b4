"""The drift-to-noise ratio (DNR) of a speaker's estimated face shape.

A face-shape estimate should be the same in every frame of a person. It is not: within a
session it jitters from frame to frame (*noise*), and between sessions its mean moves
(*drift*: camera, lighting, fitter bias, real change). For speaker ``s`` with sessions
``k = 1..K`` (``K >= 2``) and shape estimates ``b_kt`` of the valid frames ``t``:

- session mean ``m_k = mean_t b_kt``; within-session noise ``n_k^2 = mean_t |b_kt - m_k|^2``
- drift ``D_s = sqrt(mean_k |m_k - mbar|^2)`` with ``mbar = mean_k m_k``
- noise ``N_s = sqrt(mean_k n_k^2)``; ``DNR_s = D_s / N_s``

``|.|`` is the Euclidean norm over the first ``n_shape`` coefficients. Both ``D_s`` and
``N_s`` are root-mean-square distances in the same shape units (one between session means,
one between frames and their session mean), so their ratio is unit-free: multiplying every
coefficient by the same constant (a global scaling of the shape space) leaves DNR unchanged.
With ``standardize=True`` every dimension is first divided by its cohort-wide within-session
standard deviation (pooled over all frames of all usable sessions), which makes DNR also
invariant to a per-dimension scaling and stops a few high-variance coefficients from
dominating both norms. DNR > 1 means the shape moves more between sessions than it jitters
within one: a static-appearance cue would then not transfer across sessions.

Speakers with one usable session have no drift and so no DNR (their row is kept with the
reason). Sessions with fewer than ``min_valid_frames`` valid frames are skipped with a reason.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SESSION_COLUMNS = ["speaker_id", "session_id", "n_valid", "noise", "used", "reason"]
SPEAKER_COLUMNS = ["speaker_id", "n_sessions", "drift", "noise", "dnr", "reason"]


def mean_shape_columns(n: int) -> list[str]:
    """``mean_shape_000..``: the session-mean shape columns of ``dnr/sessions``."""
    return [f"mean_shape_{k:03d}" for k in range(n)]


@dataclass(frozen=True)
class SessionShapes:
    """Per-frame shape estimates of one speaker in one session.

    ``shapes`` is (n_frames, n_dims); rows with any non-finite value (invalid frames) are
    ignored. ``reason`` non-empty marks a session that is not usable at all (e.g. excluded
    by QC); it is listed in the sessions table and counts for nothing.
    """

    speaker_id: str
    session_id: str
    shapes: np.ndarray
    reason: str = ""


@dataclass
class DNRResult:
    """The two DNR tables, the cohort summary and the per-dimension scale used."""

    sessions: pd.DataFrame
    speakers: pd.DataFrame
    summary: dict[str, Any]
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))


def _valid_rows(shapes: np.ndarray, n_shape: int) -> np.ndarray:
    x = np.asarray(shapes, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"shape estimates must be (frames, dims), got {x.shape}")
    x = x[:, :n_shape]
    return x[np.isfinite(x).all(axis=1)]


def pooled_within_session_std(sessions: Sequence[np.ndarray]) -> np.ndarray:
    """Per-dimension within-session standard deviation pooled over sessions:
    ``sqrt(sum_k sum_t (b_ktd - m_kd)^2 / sum_k T_k)`` (every frame weighs the same)."""
    if not sessions:
        raise ValueError("no session to pool")
    sq = sum(((x - x.mean(axis=0)) ** 2).sum(axis=0) for x in sessions)
    count = sum(len(x) for x in sessions)
    return np.sqrt(sq / count)


def speaker_drift_noise(means: np.ndarray, noise_sq: np.ndarray) -> tuple[float, float]:
    """Drift and noise of one speaker from session means (K, D) and noises ``n_k^2`` (K,)."""
    means = np.asarray(means, dtype=np.float64)
    mbar = means.mean(axis=0)
    drift = math.sqrt(float(((means - mbar) ** 2).sum(axis=1).mean()))
    noise = math.sqrt(float(np.mean(noise_sq)))
    return drift, noise


def _describe(values: pd.Series) -> dict[str, float | None]:
    v = values.dropna().to_numpy(dtype=np.float64)
    if not len(v):
        return {"median": None, "q25": None, "q75": None, "iqr": None}
    q25, med, q75 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "q25": float(q25), "q75": float(q75), "iqr": float(q75 - q25)}


def compute_dnr(
    sessions: Iterable[SessionShapes],
    n_shape: int = 20,
    standardize: bool = False,
    min_valid_frames: int = 30,
) -> DNRResult:
    """DNR of every speaker from the per-session shape estimates (see the module docstring).

    Returns the ``dnr/sessions`` table (``speaker_id, session_id, n_valid, noise, used,
    reason, mean_shape_000..``; noise and means in the analysed units, i.e. standardised when
    ``standardize``), the ``dnr/speakers`` table (``speaker_id, n_sessions, drift, noise, dnr,
    reason``), a cohort summary and the per-dimension scale that was divided out.
    """
    if n_shape < 1:
        raise ValueError(f"n_shape must be >= 1, got {n_shape}")
    items = list(sessions)
    dims = min(
        (np.asarray(s.shapes).shape[1] for s in items if np.asarray(s.shapes).ndim == 2),
        default=n_shape,
    )
    if dims < n_shape:
        log.warning(
            "dnr.n_shape is %d but the tables hold %d shape coefficients; using %d",
            n_shape,
            dims,
            dims,
        )
        n_shape = dims

    rows: list[dict[str, Any]] = []
    used: list[tuple[int, np.ndarray]] = []
    for s in items:
        x = _valid_rows(s.shapes, n_shape) if not s.reason else np.zeros((0, n_shape))
        row = {
            "speaker_id": str(s.speaker_id),
            "session_id": str(s.session_id),
            "n_valid": len(x),
            "noise": math.nan,
            "used": False,
            "reason": s.reason,
        }
        if not s.reason and len(x) < min_valid_frames:
            row["reason"] = (
                f"only {len(x)} valid frames (dnr.min_valid_frames is {min_valid_frames})"
            )
        if not row["reason"]:
            row["used"] = True
            used.append((len(rows), x))
        rows.append(row)

    scale = np.ones(n_shape)
    if standardize and used:
        scale = pooled_within_session_std([x for _, x in used])
        zero = scale <= 0
        if zero.any():
            log.warning(
                "shape dims %s never vary within a session; left unscaled",
                np.flatnonzero(zero).tolist(),
            )
            scale[zero] = 1.0

    means = np.full((len(rows), n_shape), np.nan)
    noise_sq = np.full(len(rows), np.nan)
    for i, x in used:
        z = x / scale
        m = z.mean(axis=0)
        means[i] = m
        noise_sq[i] = float(((z - m) ** 2).sum(axis=1).mean())
        rows[i]["noise"] = math.sqrt(noise_sq[i])

    sessions_df = pd.concat(
        [
            pd.DataFrame(rows, columns=SESSION_COLUMNS),
            pd.DataFrame(means, columns=mean_shape_columns(n_shape)),
        ],
        axis=1,
    )
    sessions_df = sessions_df.sort_values(["speaker_id", "session_id"], kind="stable")
    sessions_df = sessions_df.reset_index(drop=True)

    speaker_rows = []
    for speaker, group in sessions_df.groupby("speaker_id", sort=True):
        ok = group[group["used"]]
        row = {
            "speaker_id": speaker,
            "n_sessions": len(ok),
            "drift": math.nan,
            "noise": math.nan,
            "dnr": math.nan,
            "reason": "",
        }
        if len(ok) == 0:
            row["reason"] = "no usable session"
        else:
            drift, noise = speaker_drift_noise(
                ok[mean_shape_columns(n_shape)].to_numpy(), ok["noise"].to_numpy() ** 2
            )
            row["noise"] = noise
            if len(ok) < 2:
                row["reason"] = "one usable session: drift needs at least two"
            elif noise <= 0:
                row["drift"] = drift
                row["reason"] = "zero within-session noise"
            else:
                row.update(drift=drift, dnr=drift / noise)
        speaker_rows.append(row)
    speakers_df = pd.DataFrame(speaker_rows, columns=SPEAKER_COLUMNS)
    speakers_df["n_sessions"] = speakers_df["n_sessions"].astype(np.int64)
    sessions_df["n_valid"] = sessions_df["n_valid"].astype(np.int64)

    summary = {
        "n_shape": n_shape,
        "standardize": bool(standardize),
        "min_valid_frames": int(min_valid_frames),
        "n_sessions": len(sessions_df),
        "n_sessions_used": int(sessions_df["used"].sum()),
        "n_speakers": len(speakers_df),
        "n_speakers_with_dnr": int(speakers_df["dnr"].notna().sum()),
        "drift": _describe(speakers_df["drift"]),
        "noise": _describe(speakers_df["noise"]),
        "dnr": _describe(speakers_df["dnr"]),
        "scale": scale.tolist(),
    }
    for r in speakers_df[speakers_df["reason"] != ""].itertuples():
        log.info("no DNR for speaker %s: %s", r.speaker_id, r.reason)
    log.info(
        "DNR of %d of %d speakers: median %s",
        summary["n_speakers_with_dnr"],
        summary["n_speakers"],
        summary["dnr"]["median"],
    )
    return DNRResult(sessions_df, speakers_df, summary, scale)


def shape_sessions_from_tables(
    videos: Iterable[Mapping[str, Any]],
    n_shape: int,
) -> list[SessionShapes]:
    """Read the shape columns of FLAME tables into :class:`SessionShapes`.

    ``videos`` yields mappings with ``speaker_id, session_id, path`` and optionally
    ``reason`` (non-empty: not usable, the table is not read). Only ``valid`` rows count.
    """
    from facedyn.flame.table import shape_columns
    from facedyn.tables import read_table

    out = []
    for v in videos:
        reason = str(v.get("reason") or "")
        shapes = np.zeros((0, n_shape))
        if not reason:
            names = [c for c in read_table_columns(v["path"]) if c.startswith("shape_")]
            cols = [c for c in shape_columns(n_shape) if c in names]
            if not cols:
                reason = "the FLAME table has no shape columns"
            else:
                df, _ = read_table(v["path"], columns=["valid", *cols])
                shapes = df.loc[df["valid"].astype(bool), cols].to_numpy(np.float64)
        out.append(SessionShapes(str(v["speaker_id"]), str(v["session_id"]), shapes, reason))
    return out


def read_table_columns(path: Any) -> list[str]:
    """Column names of a Parquet table without reading its data."""
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def spearman_check(
    speakers: pd.DataFrame, truth: pd.DataFrame, column: str = "instability"
) -> dict[str, Any]:
    """Spearman correlation of per-speaker DNR with a ground-truth column (validation on the
    synthetic cohort: DNR should rank speakers by their ``instability`` knob)."""
    from scipy.stats import spearmanr

    merged = speakers.merge(
        truth[["speaker_id", column]].astype({"speaker_id": str}), on="speaker_id", how="inner"
    ).dropna(subset=["dnr", column])
    out: dict[str, Any] = {
        "truth_column": column,
        "n_speakers": len(merged),
        "spearman_rho": None,
        "spearman_p": None,
    }
    if len(merged) >= 3:
        res = spearmanr(merged["dnr"], merged[column])
        out.update(spearman_rho=float(res.statistic), spearman_p=float(res.pvalue))
        # The ratio's two parts separately: says whether drift, noise or both follow the knob.
        for part in ("drift", "noise"):
            res = spearmanr(merged[part], merged[column])
            out[f"{part}_spearman_rho"] = float(res.statistic)
            out[f"{part}_spearman_p"] = float(res.pvalue)
    return out
