"""How well fitted FLAME parameters recover the synthetic cohort's ground truth.

Validation only: the synthetic cohort writes per-frame truth (``truth/frames/<session>/
<speaker>.parquet``: ``frame``, ``shape_*``, ``expr_*``, ``jaw_*``, ``rot_*`` and the true
projected landmarks); a fitted FLAME table is joined to it on ``frame`` (fitting runs at the
landmark stage's sampled rate, the truth at the video rate) over the fitted table's valid
frames.

Measures, per video:

* per expression component, Pearson r between fitted and true coefficient over time
  (components whose truth does not vary in that video get NaN);
* ``jaw_open_r``: the same for ``jaw_0``, the jaw's opening rotation;
* ``shape_rmse``: RMS over the first ``n_shape_truth`` coefficients of (fitted session-mean
  shape - true shape), in prior standard deviations (the truth is N(0, 1) per coefficient,
  so 1.0 is "no better than guessing the mean face");
* the fitted table's ``nme`` (landmark residual / inter-ocular distance) distribution;
* the video's mean error (fitted - true) of every expression component and ``jaw_0``, and its
  mean true shape, for the cohort's **shape leak**: how well the true head shape predicts
  the mean error across speakers it was not trained on (:func:`shape_expression_leak`, R^2
  per component). A fitter that keeps shape and expression apart has no such error; one
  whose expression absorbs shape does.

The cohort summary judges expression recovery on the **dominant components**: the smallest
set of components that together carry ``fraction`` (90 %) of the truth's pooled expression
variance. Components that only carry the generator's small identity-free background motion
are not meant to be recoverable from 68 landmarks and are reported but not judged.

**Expression modes.** Coefficients are only identifiable when their blendshapes are
linearly independent. FLAME's expression basis is a PCA basis (orthogonal over the mesh);
the synthetic head's components are named deformations that overlap (its ``smile`` is
``smile_left + smile_right`` and ``eyes_wide`` is ``-0.4 blink``, exactly), so two coefficient
vectors that move every vertex alike count as different there. Given the head's expression
blendshapes, every coefficient vector is therefore also measured in the head's orthonormal
*modes* (:func:`expression_modes`: the SVD of the blendshapes, ``z = Sigma W^T c``, metres
along each orthonormal mesh direction), and the summary reports the same figures over the
dominant modes (``expression_mode_*``). For a PCA basis modes and components coincide up to
order and sign.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facedyn.atomic import atomic_write_json
from facedyn.names import table_ids
from facedyn.synthetic.layout import frame_table
from facedyn.tables import read_table, write_table

JAW_OPEN = "jaw_0"
MODE_PREFIX = "mode_"


def expression_modes(expression_dirs: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
    """Map from expression coefficients to the head's orthonormal expression modes.

    Args:
        expression_dirs: (V, 3, E) expression blendshapes.
        rtol: singular values below ``rtol`` times the largest are dropped (the rank).

    Returns:
        (R, E) matrix ``Sigma W^T`` of the SVD ``D = U Sigma W^T`` of the (3V, E) blendshape
        matrix: ``z = P @ c`` are coefficients ``c`` in metres along the orthonormal mesh
        directions ``U``, ordered by singular value; R is the basis's rank.
    """
    d = np.asarray(expression_dirs, dtype=np.float64)
    d = d.reshape(-1, d.shape[-1])
    _, sing, wt = np.linalg.svd(d, full_matrices=False)
    keep = sing > rtol * sing[0] if len(sing) and sing[0] > 0 else np.zeros(len(sing), bool)
    return sing[keep, None] * wt[keep]


def head_expression_modes(model_path: str | os.PathLike[str]) -> np.ndarray:
    """:func:`expression_modes` of a head model file (FLAME layout: expression from 300 on)."""
    from facedyn.flame.io import load_flame_arrays

    return expression_modes(load_flame_arrays(model_path).shapedirs[..., 300:])


def _columns(df: pd.DataFrame, prefix: str) -> list[str]:
    return [c for c in df.columns if c.startswith(prefix)]


def match_truth(fitted: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Valid fitted rows joined to the truth on ``frame``; truth columns get suffix ``_true``.

    Raises:
        ValueError: no valid fitted frame has a truth row (the tables are not of one video).
    """
    valid = fitted[fitted["valid"].astype(bool)]
    keep = [
        "frame",
        *_columns(truth, "expr_"),
        *_columns(truth, "jaw_"),
        *_columns(truth, "shape_"),
    ]
    joined = valid.merge(truth[keep], on="frame", how="inner", suffixes=("", "_true"))
    if len(valid) and joined.empty:
        raise ValueError(
            "no valid fitted frame matches a truth frame: are the fitted table "
            "and the truth table of the same video?"
        )
    return joined


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.std(a) < 1e-12 or np.std(b) < 1e-12:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _modal(values: np.ndarray, modes: np.ndarray) -> np.ndarray:
    """(N, E') coefficients -> (N, R) modes; missing trailing coefficients count as zero."""
    n = min(values.shape[1], modes.shape[1])
    return values[:, :n] @ modes[:, :n].T


def video_quality(
    fitted: pd.DataFrame,
    truth: pd.DataFrame,
    n_shape_truth: int = 20,
    modes: np.ndarray | None = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-component correlations (long table) and per-video scalars for one video.

    Args:
        modes: :func:`expression_modes` of the head; when given, the table also has one row
            per mode (``component`` ``mode_000``, ...).

    Returns:
        (components, scalars): ``components`` has columns ``component, r, truth_sd,
        fitted_sd`` for every expression component the fitted table has and the truth has
        (and every mode); ``scalars`` holds ``jaw_open_r``, ``shape_rmse``, ``nme_median``,
        ``nme_p90``, ``frames_matched``.
    """
    joined = match_truth(fitted, truth)
    rows = []
    for col in _columns(fitted, "expr_"):
        if col + "_true" not in joined:
            continue
        fit_v = joined[col].to_numpy(float)
        true_v = joined[col + "_true"].to_numpy(float)
        rows.append(
            {
                "component": col,
                "r": _pearson(fit_v, true_v),
                "truth_sd": float(np.std(true_v)),
                "fitted_sd": float(np.std(fit_v)),
            }
        )
    if modes is not None and len(joined):
        fit_z = _modal(joined[_columns(fitted, "expr_")].to_numpy(float), modes)
        true_z = _modal(
            joined[[c + "_true" for c in _columns(truth, "expr_")]].to_numpy(float), modes
        )
        for k in range(modes.shape[0]):
            rows.append(
                {
                    "component": f"{MODE_PREFIX}{k:03d}",
                    "r": _pearson(fit_z[:, k], true_z[:, k]),
                    "truth_sd": float(np.std(true_z[:, k])),
                    "fitted_sd": float(np.std(fit_z[:, k])),
                }
            )
    shape_cols = [c for c in _columns(fitted, "shape_")[:n_shape_truth] if c + "_true" in joined]
    if shape_cols and len(joined):
        err = (
            joined[shape_cols].mean().to_numpy()
            - joined[[c + "_true" for c in shape_cols]].mean().to_numpy()
        )
        shape_rmse = float(np.sqrt(np.mean(err**2)))
    else:
        shape_rmse = float("nan")
    nme = fitted.loc[fitted["valid"].astype(bool), "nme"].to_numpy(float)
    scalars = {
        "jaw_open_r": (
            _pearson(joined[JAW_OPEN].to_numpy(float), joined[JAW_OPEN + "_true"].to_numpy(float))
            if JAW_OPEN + "_true" in joined
            else float("nan")
        ),
        "shape_rmse": shape_rmse,
        "nme_median": float(np.median(nme)) if len(nme) else float("nan"),
        "nme_p90": float(np.percentile(nme, 90)) if len(nme) else float("nan"),
        "frames_matched": float(len(joined)),
        **_mean_error(joined, fitted, n_shape_truth),
    }
    return pd.DataFrame(rows, columns=["component", "r", "truth_sd", "fitted_sd"]), scalars


def _mean_error(joined: pd.DataFrame, fitted: pd.DataFrame, n_shape_truth: int) -> dict[str, float]:
    """Per-video means for the shape leak: ``err:<component>`` (fitted - true) and
    ``shape:<coefficient>`` (true)."""
    out = {}
    for col in [*_columns(fitted, "expr_"), JAW_OPEN]:
        if col in joined and col + "_true" in joined:
            out[f"err:{col}"] = float((joined[col] - joined[col + "_true"]).mean())
    for col in [c + "_true" for c in _columns(fitted, "shape_")[:n_shape_truth]]:
        if col in joined:
            out[f"shape:{col.removesuffix('_true')}"] = float(joined[col].mean())
    return out


def shape_expression_leak(
    videos: pd.DataFrame,
    components: Iterable[str] | None = None,
    min_speakers: int = 4,
    alphas: Sequence[float] = tuple(np.logspace(-2, 3, 12)),
) -> dict[str, float]:
    """Shape leaking into expression: per component, the R^2 with which a video's mean true
    shape predicts its mean expression error (ridge regression, alpha by leave-one-out
    inside each training set; cross-validated over folds of whole speakers, at most 6).

    Args:
        videos: one row per video with ``speaker_id`` and the ``err:<component>`` and
            ``shape:<coefficient>`` columns of :func:`cohort_quality`'s video table.
        components: the components to measure (default: every ``err:`` column's).
        min_speakers: fewer speakers give no estimate (empty result).

    Returns:
        ``{component: R^2}``; 0 means the shape predicts nothing of the error (negative
        values: worse than the mean), 1 that the error is a function of the shape.
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GroupKFold, cross_val_predict

    err_cols = (
        [c for c in videos.columns if c.startswith("err:")]
        if components is None
        else [f"err:{c}" for c in components if f"err:{c}" in videos]
    )
    shape_cols = [c for c in videos.columns if c.startswith("shape:")]
    if not err_cols or not shape_cols or "speaker_id" not in videos:
        return {}
    rows = videos.dropna(subset=err_cols + shape_cols)
    n_speakers = rows["speaker_id"].nunique()
    if n_speakers < min_speakers:
        return {}
    x = rows[shape_cols].to_numpy(float)
    folds = GroupKFold(n_splits=min(6, n_speakers))
    out = {}
    for col in err_cols:
        y = rows[col].to_numpy(float)
        ss = float(((y - y.mean()) ** 2).sum())
        if ss <= 0:
            continue
        pred = cross_val_predict(RidgeCV(alphas=alphas), x, y, groups=rows["speaker_id"], cv=folds)
        out[col.removeprefix("err:")] = float(1 - ((y - pred) ** 2).sum() / ss)
    return out


def dominant_components(truth_variance: pd.Series, fraction: float = 0.9) -> list[str]:
    """The fewest components whose variance adds up to ``fraction`` of the total."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    order = truth_variance.sort_values(ascending=False)
    share = order.cumsum() / order.sum()
    n = int(np.searchsorted(share.to_numpy(), fraction - 1e-12) + 1)
    return list(order.index[:n])


def cohort_quality(
    pairs: Iterable[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    n_shape_truth: int = 20,
    fraction: float = 0.9,
    modes: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Fit quality over many videos.

    Args:
        pairs: (fitted FLAME table, truth frames table) paths, one pair per video.
        n_shape_truth: shape coefficients the generator drives (``dataset.synthetic.n_shape``).
        fraction: variance share that defines the dominant expression components.
        modes: :func:`expression_modes` of the head, for the ``expression_mode_*`` figures.

    Returns:
        (components, videos, summary): long per-video x component table, one row of scalars
        per video, and the cohort summary (the figures the issue asks for).
    """
    comp_tables, video_rows = [], []
    for fitted_path, truth_path in pairs:
        fitted, meta = read_table(fitted_path)
        truth, _ = read_table(truth_path)
        ids = {
            "session_id": str(meta.get("session_id", "")),
            "speaker_id": str(meta.get("speaker_id", "")),
        }
        if not fitted["valid"].any():
            video_rows.append({**ids, "frames_matched": 0.0})
            continue
        comps, scalars = video_quality(fitted, truth, n_shape_truth, modes)
        comp_tables.append(comps.assign(**ids))
        video_rows.append({**ids, **scalars})
    components = (
        pd.concat(comp_tables, ignore_index=True)
        if comp_tables
        else pd.DataFrame(
            columns=["component", "r", "truth_sd", "fitted_sd", "session_id", "speaker_id"]
        )
    )
    videos = pd.DataFrame(video_rows)
    return components, videos, summarize_quality(components, videos, fraction)


def _median(values: Sequence[float] | pd.Series) -> float:
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(np.median(arr)) if len(arr) else float("nan")


def summarize_quality(
    components: pd.DataFrame, videos: pd.DataFrame, fraction: float = 0.9
) -> dict[str, Any]:
    """Headline figures: median r over the dominant components (and modes), jaw r, shape
    error, NME."""
    if components.empty:
        return {"videos": len(videos), "videos_fitted": 0}
    is_mode = components["component"].str.startswith(MODE_PREFIX)
    modal: dict[str, Any] = {}
    if is_mode.any():
        dominant, share, median, by = _dominant_r(components[is_mode], fraction)
        modal = {
            "dominant_modes": dominant,
            "dominant_modes_variance_share": share,
            "expression_mode_r_median": median,
            "expression_mode_r_by_mode": by,
        }
    dominant, share, median, by = _dominant_r(components[~is_mode], fraction)
    fitted = videos[videos["frames_matched"] > 0]
    leak_dominant = shape_expression_leak(fitted, [*dominant, JAW_OPEN])
    return {
        **modal,
        "videos": len(videos),
        "videos_fitted": len(fitted),
        "variance_fraction": fraction,
        "dominant_components": dominant,
        "dominant_variance_share": share,
        "expression_r_median": median,
        "expression_r_by_component": by,
        "jaw_open_r_median": _median(fitted["jaw_open_r"]),
        "jaw_open_r_iqr": [float(np.nanpercentile(fitted["jaw_open_r"], q)) for q in (25, 75)],
        "shape_rmse_median": _median(fitted["shape_rmse"]),
        "nme_median": _median(fitted["nme_median"]),
        "nme_p90_median": _median(fitted["nme_p90"]),
        "shape_leak_r2_by_component": leak_dominant,
        "shape_leak_r2_median": _median(list(leak_dominant.values())),
    }


def _dominant_r(
    rows: pd.DataFrame, fraction: float
) -> tuple[list[str], float, float, dict[str, float]]:
    """Dominant set of a long (video x component) table, its variance share, the median over
    it of the per-component median r, and that r per component."""
    variance = rows.assign(var=rows["truth_sd"] ** 2).groupby("component")["var"].mean()
    dominant = dominant_components(variance, fraction)
    per_comp = rows.groupby("component")["r"].median()
    return (
        dominant,
        float(variance[dominant].sum() / variance.sum()),
        _median(per_comp[dominant]),
        {c: float(per_comp[c]) for c in dominant},
    )


def run_fit_quality(
    flame_paths: Iterable[str | os.PathLike[str]],
    truth_frames: str | os.PathLike[str],
    model_json: str | os.PathLike[str],
    outputs: Mapping[str, str | os.PathLike[str]],
    n_shape_truth: int = 20,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``fit_quality`` rule: :func:`cohort_quality` of every FLAME table against its
    video's truth, in the run's head model's expression modes, written to
    ``outputs["components"]``, ``outputs["videos"]`` (tables) and ``outputs["summary"]``
    (JSON), all with ``provenance``.

    Args:
        flame_paths: the FLAME tables (``.../{session}/{speaker}.parquet``).
        truth_frames: the cohort's per-frame truth folder
            (:func:`facedyn.synthetic.layout.frames_dir`); each table's truth is
            :func:`facedyn.synthetic.layout.frame_table` of its ids.
        model_json: the run's ``results/flame/model.json`` (its ``model`` is the head whose
            :func:`head_expression_modes` are measured).
        outputs: ``components``, ``videos`` and ``summary`` paths.
        n_shape_truth: shape coefficients the generator drives (``dataset.synthetic.n_shape``).
        provenance: :func:`facedyn.runtime.provenance` of the job.

    Returns:
        The summary as written.
    """
    pairs = [(p, frame_table(truth_frames, *table_ids(p))) for p in flame_paths]
    modes = head_expression_modes(json.loads(Path(model_json).read_text())["model"])
    components, videos, summary = cohort_quality(pairs, n_shape_truth, modes=modes)
    meta = {"provenance": dict(provenance or {})}
    write_table(components, outputs["components"], meta)
    write_table(videos, outputs["videos"], meta)
    summary["provenance"] = meta["provenance"]
    atomic_write_json(outputs["summary"], summary)
    return summary


__all__ = [
    "cohort_quality",
    "dominant_components",
    "expression_modes",
    "head_expression_modes",
    "match_truth",
    "run_fit_quality",
    "shape_expression_leak",
    "summarize_quality",
    "video_quality",
]
