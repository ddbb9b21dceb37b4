"""Closed-set identification and verification metrics from (window x speaker) score matrices.

Every model, learned encoder or baseline, ends in the same place: a score matrix ``scores``
of shape ``(N, S)``, one row per test window and one column per enrolled speaker (higher is
more similar: cosine to a speaker's enrolment centroid, or a classifier's log-probability).
Everything below is computed from such a matrix, so all models are measured the same way.

Conventions (the contract is in docs/pipeline.md):

- **Rank** of the true speaker is 1-based and *pessimistic*: the number of speakers scoring
  at least as high as the true speaker (the true speaker included). Ties therefore count
  against the model: a constant scorer has rank S, not 1, and ``top1 = mean(rank == 1)``
  credits only a strict win. ``predicted_speaker_id`` is the best-scoring speaker; among
  speakers tied at the top it is the true speaker only when no one ties with them, so
  ``predicted == true`` exactly when ``rank == 1``.
- **top-k**: micro average over windows (every window counts once); the CMC curve is top-k
  for k = 1..S and ends at 1.
- **session_top1**: the score vectors of all windows of one test (speaker, session) are
  averaged and ranked once; each (speaker, session) counts once. For cosine scores to
  centroids this ranks speakers like the cosine of the session's mean embedding, whose norm
  is common to the row.
- **Verification** from the same matrix: target trials are (window, own speaker), non-target
  trials (window, every other enrolled speaker). At CANDOR scale that is ~10^9 non-target
  scores, too many to hand to ``sklearn.metrics.roc_curve``; they are counted exactly
  against the sorted target scores in chunks instead and compressed into a weighted trial
  list (ties with a target score kept on that score, all others merged per gap between
  consecutive target scores), whose ROC has exactly the corners of the full one. ``eer`` is
  the crossing of P_miss and P_fa, linearly interpolated between ROC corners; ``min_dcf`` is
  the NIST SRE normalised minimum detection cost at ``p_target`` (default 0.01,
  C_miss = C_fa = 1).
- **Pooling over folds** (:func:`summarize_model`): top-1/top-5 pool all test windows of all
  folds (micro); the CI resamples *speakers* (cluster bootstrap), because windows of one
  speaker are strongly dependent; ``session_top1`` pools the test sessions of all folds;
  ``eer`` and ``min_dcf`` are the unweighted means over folds (each fold's model has its own
  score scale, so trials of different folds are not pooled into one ROC).

Score matrices may be large (10^6 x 1,429 float32 is 5.7 GB): functions read them in row
chunks so temporaries stay around :data:`CHUNK_ELEMENTS` elements; a ``np.memmap`` works.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.stats
from sklearn.metrics import roc_curve

#: Columns of ``identify/{experiment}/fold{k}/predictions.parquet``, in order.
PREDICTION_COLUMNS = [
    "model",
    "fold",
    "speaker_id",
    "session_id",
    "window_start",
    "predicted_speaker_id",
    "rank",
    "score",
]
#: Rows of one prediction table are unique on these columns.
PREDICTION_KEY = ["model", "fold", "speaker_id", "session_id", "window_start"]
#: Elements of a score matrix processed at once (rows x speakers); ~32 M, 128 MB of float32.
CHUNK_ELEMENTS = 1 << 25
#: Default target prior of the detection cost (NIST SRE style).
P_TARGET = 0.01


# --- enrolment and scores --------------------------------------------------------------------


def _l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, eps)


def centroids(
    embeddings: np.ndarray, labels: Sequence[str] | np.ndarray
) -> tuple[list[str], np.ndarray]:
    """Per-speaker enrolment centroids: the mean training-window embedding of each speaker,
    L2-normalised (the cosine to it ranks like the cosine to the unnormalised mean).

    Returns ``(classes, C)``: the speaker ids sorted as strings and ``C`` of shape
    ``(S, D)`` float32, row ``i`` belonging to ``classes[i]``.
    """
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or len(emb) != len(labels):
        raise ValueError(
            f"embeddings must be (N, D) with one label per row; got {emb.shape} "
            f"and {len(labels)} labels"
        )
    classes, inverse = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    # sum per speaker through a sparse indicator matrix: one pass, no Python loop
    indicator = sp.csr_matrix(
        (np.ones(len(emb)), (inverse, np.arange(len(emb)))), shape=(len(classes), len(emb))
    )
    sums = np.asarray(indicator @ emb.astype(np.float64))
    return [str(c) for c in classes], _l2_normalise(sums).astype(np.float32)


def cosine_scores(test_emb: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Cosine similarity of every test embedding (rows re-normalised) to every centroid:
    ``(N, S)`` float32."""
    test = _l2_normalise(np.asarray(test_emb, dtype=np.float32))
    return (test @ _l2_normalise(np.asarray(C, dtype=np.float32)).T).astype(np.float32)


def centroid_scores(
    enrol_emb: np.ndarray, enrol_labels: Sequence[str] | np.ndarray, test_emb: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """Nearest-centroid scoring: every test embedding's :func:`cosine_scores` to the
    :func:`centroids` of the enrolment embeddings. Returns ``(classes, scores)``, ``scores``
    of shape ``(N, S)`` with column ``i`` belonging to ``classes[i]``."""
    classes, C = centroids(enrol_emb, enrol_labels)
    return classes, cosine_scores(test_emb, C)


def nearest_centroid_top1(
    enrol_emb: np.ndarray,
    enrol_labels: Sequence[str] | np.ndarray,
    test_emb: np.ndarray,
    test_labels: Sequence[str] | np.ndarray,
) -> float:
    """Top-1 accuracy of nearest-centroid identification: the share of test embeddings whose
    own speaker scores strictly highest in :func:`centroid_scores` (pessimistic rank 1, see
    the module docstring), as ``top1`` of :func:`identification_metrics`; NaN without test
    embeddings. Labels are compared as strings; every test label must be enrolled."""
    if not len(test_emb):
        return math.nan
    classes, scores = centroid_scores(enrol_emb, enrol_labels, test_emb)
    rank, _, _ = ranks_and_predictions(
        scores, true_indices(classes, np.asarray(test_labels).astype(str))
    )
    return float(np.mean(rank == 1))


def true_indices(classes: Sequence[str], true_speaker: Sequence[str] | np.ndarray) -> np.ndarray:
    """Column of every window's true speaker in ``classes``; a speaker that is not enrolled
    (closed-set identification is undefined for them) raises ``ValueError``."""
    cls = np.asarray([str(c) for c in classes])
    if len(np.unique(cls)) != len(cls):
        raise ValueError("classes must be unique")
    order = np.argsort(cls, kind="stable")
    true = np.asarray(true_speaker).astype(str)
    pos = np.searchsorted(cls[order], true)
    pos = np.minimum(pos, len(cls) - 1) if len(cls) else pos
    ok = (cls[order][pos] == true) if len(cls) else np.zeros(len(true), dtype=bool)
    if not ok.all():
        missing = sorted(set(true[~ok].tolist()))
        raise ValueError(
            f"{len(missing)} test speaker(s) not enrolled (no training windows): {missing[:10]}"
        )
    return order[pos].astype(np.int64)


def _check_scores(scores: np.ndarray, n: int, n_classes: int) -> None:
    if scores.ndim != 2 or scores.shape != (n, n_classes):
        raise ValueError(f"scores must be (N, S) = ({n}, {n_classes}); got {scores.shape}")


def _chunks(n_rows: int, n_cols: int) -> Iterator[slice]:
    step = max(1, CHUNK_ELEMENTS // max(1, n_cols))
    for a in range(0, n_rows, step):
        yield slice(a, min(n_rows, a + step))


def ranks_and_predictions(
    scores: np.ndarray, true_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pessimistic 1-based rank of the true speaker, predicted column and true score per
    row (see the module docstring for ties)."""
    n = len(true_index)
    rank = np.empty(n, dtype=np.int64)
    pred = np.empty(n, dtype=np.int64)
    true_score = np.empty(n, dtype=np.float64)
    for sl in _chunks(n, scores.shape[1]):
        x = np.asarray(scores[sl])
        if np.isnan(x).any():
            raise ValueError("scores contain NaN")
        idx = true_index[sl]
        t = x[np.arange(len(idx)), idx]
        r = (x >= t[:, None]).sum(axis=1)
        p = x.argmax(axis=1)
        # a tie at the top with the true speaker is an error: predict one of the others
        fix = (p == idx) & (r > 1)
        if fix.any():
            y = x[fix].astype(np.float64, copy=True)
            y[np.arange(len(y)), idx[fix]] = -np.inf
            p[fix] = y.argmax(axis=1)
        rank[sl], pred[sl], true_score[sl] = r, p, t
    return rank, pred, true_score


def predictions_frame(
    scores: np.ndarray,
    classes: Sequence[str],
    true_speaker: Sequence[str] | np.ndarray,
    session_id: Sequence[str] | np.ndarray,
    window_start: np.ndarray,
    model: str,
    fold: int,
) -> pd.DataFrame:
    """One row per test window with exactly the columns :data:`PREDICTION_COLUMNS`:
    ``model, fold, speaker_id, session_id, window_start`` (source frame of the window's first
    row), ``predicted_speaker_id`` (top-1), ``rank`` (pessimistic, 1-based) and ``score``
    (the true speaker's score: a cosine for encoders, a log-probability for classifiers)."""
    classes = [str(c) for c in classes]
    true = np.asarray(true_speaker).astype(str)
    idx = true_indices(classes, true)
    scores = scores if isinstance(scores, np.ndarray) else np.asarray(scores)
    _check_scores(scores, len(idx), len(classes))
    if not (len(session_id) == len(window_start) == len(idx)):
        raise ValueError("true_speaker, session_id and window_start must have one entry per row")
    rank, pred, score = ranks_and_predictions(scores, idx)
    return pd.DataFrame(
        {
            "model": pd.Series([str(model)] * len(idx), dtype=object),
            "fold": np.full(len(idx), int(fold), dtype=np.int64),
            "speaker_id": true.astype(object),
            "session_id": np.asarray(session_id).astype(str).astype(object),
            "window_start": np.asarray(window_start).astype(np.int64),
            "predicted_speaker_id": np.asarray(classes, dtype=object)[pred]
            if len(idx)
            else np.zeros(0, dtype=object),
            "rank": rank,
            "score": score,
        },
        columns=PREDICTION_COLUMNS,
    )


# --- identification and verification ---------------------------------------------------------


def cmc_curve(rank: np.ndarray, n_classes: int) -> np.ndarray:
    """Cumulative match characteristic: ``cmc[k - 1] = mean(rank <= k)`` for k = 1..S."""
    counts = np.bincount(np.asarray(rank, dtype=np.int64), minlength=n_classes + 1)[1:]
    return np.cumsum(counts[:n_classes]) / max(1, len(rank))


def session_scores(
    scores: np.ndarray, true_index: np.ndarray, session_id: Sequence[str] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean score vector of every test (speaker, session) and its true column:
    ``(G, S)`` float64 and ``(G,)``; groups in order of first appearance."""
    key = pd.MultiIndex.from_arrays([np.asarray(true_index), np.asarray(session_id).astype(str)])
    group, uniques = pd.factorize(key)
    n_groups = len(uniques)
    counts = np.bincount(group, minlength=n_groups)
    mean = sp.csc_matrix(
        (1.0 / counts[group], (group, np.arange(len(group)))), shape=(n_groups, len(group))
    )
    out = np.zeros((n_groups, scores.shape[1]))
    for sl in _chunks(len(group), scores.shape[1]):
        out += mean[:, sl] @ np.asarray(scores[sl], dtype=np.float64)
    group_true = np.asarray(uniques.get_level_values(0), dtype=np.int64)
    return out, group_true


def _nontarget_counts(
    scores: np.ndarray, true_index: np.ndarray, u: np.ndarray, target_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For every unique target score ``u[i]``: how many non-target scores are ``< u[i]``
    and ``<= u[i]``. Each chunk of the matrix is sorted once and the (few) target values
    searched in it; the chunk's own target entries are subtracted afterwards, so no mask
    or copy of the chunk is needed."""
    lt = np.zeros(len(u), dtype=np.int64)
    le = np.zeros(len(u), dtype=np.int64)
    for sl in _chunks(len(true_index), scores.shape[1]):
        x = np.sort(np.asarray(scores[sl]), axis=None)
        if len(x) and np.isnan(x[-1]):  # NaN sorts last
            raise ValueError("scores contain NaN")
        lt += np.searchsorted(x, u.astype(x.dtype), side="left")
        le += np.searchsorted(x, u.astype(x.dtype), side="right")
    cum = np.cumsum(target_counts)
    return lt - (cum - target_counts), le - cum


def verification_curve(
    scores: np.ndarray, true_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """ROC of the verification trials of a score matrix: ``(p_fa, p_miss, n_target,
    n_nontarget)`` at every ROC corner, thresholds decreasing (from accept-nothing to
    accept-all). Exact (see the module docstring) and computed with ``roc_curve``."""
    n, n_classes = scores.shape
    if n == 0 or n_classes < 2:
        raise ValueError("verification needs at least one window and two enrolled speakers")
    target = np.empty(n, dtype=scores.dtype)
    for sl in _chunks(n, n_classes):
        target[sl] = np.asarray(scores[sl])[np.arange(sl.stop - sl.start), true_index[sl]]
    u, t_counts = np.unique(target, return_counts=True)
    nt_lt, nt_le = _nontarget_counts(scores, true_index, u, t_counts)
    n_non = n * (n_classes - 1)
    # weighted non-target trials: ties with a target score stay on it; every other group
    # (below the lowest, between consecutive, above the highest target score) goes on one
    # representative value strictly inside its gap (none exists: the group is empty)
    between = np.concatenate([[nt_lt[0]], nt_lt[1:] - nt_le[:-1], [n_non - nt_le[-1]]])
    uf = u.astype(np.float64)
    rep = np.concatenate([[np.nextafter(uf[0], -np.inf)], np.nextafter(uf, np.inf)])
    s = np.concatenate([uf, uf, rep])
    w = np.concatenate([t_counts, nt_le - nt_lt, between]).astype(np.float64)
    y = np.concatenate([np.ones(len(u)), np.zeros(len(u) + len(rep))])
    keep = w > 0
    fpr, tpr, _ = roc_curve(y[keep], s[keep], sample_weight=w[keep], drop_intermediate=True)
    return fpr, 1.0 - tpr, n, n_non


def equal_error_rate(p_fa: np.ndarray, p_miss: np.ndarray) -> float:
    """Where P_miss and P_fa cross along the ROC (P_fa increasing, P_miss decreasing),
    linearly interpolated between the two corners around the crossing."""
    d = p_miss - p_fa
    i = int(np.argmax(d <= 0))  # first corner where P_miss <= P_fa (the last one always is)
    if i == 0:
        return float(p_fa[0])
    t = d[i - 1] / (d[i - 1] - d[i])
    return float(p_fa[i - 1] + t * (p_fa[i] - p_fa[i - 1]))


def min_dcf(
    p_fa: np.ndarray,
    p_miss: np.ndarray,
    p_target: float = P_TARGET,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> float:
    """Normalised minimum detection cost (NIST SRE): the minimum over thresholds of
    ``(C_miss P_miss p_t + C_fa P_fa (1 - p_t)) / min(C_miss p_t, C_fa (1 - p_t))``; 0 is
    perfect, 1 is no better than always rejecting (or always accepting). The cost is linear
    between ROC corners, so its minimum is at a corner."""
    dcf = c_miss * p_miss * p_target + c_fa * p_fa * (1.0 - p_target)
    return float(dcf.min() / min(c_miss * p_target, c_fa * (1.0 - p_target)))


def _subsample_curve(
    p_fa: np.ndarray, p_miss: np.ndarray, max_points: int
) -> tuple[np.ndarray, np.ndarray]:
    if len(p_fa) > max_points:
        keep = np.unique(np.round(np.linspace(0, len(p_fa) - 1, max_points)).astype(np.int64))
        p_fa, p_miss = p_fa[keep], p_miss[keep]
    return p_fa, p_miss


def identification_metrics(
    scores: np.ndarray,
    classes: Sequence[str],
    true_speaker: Sequence[str] | np.ndarray,
    session_id: Sequence[str] | np.ndarray,
    *,
    p_target: float = P_TARGET,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
    max_curve_points: int = 500,
) -> dict[str, Any]:
    """Identification and verification metrics of one fold's ``(N, S)`` score matrix.

    Returns a JSON-ready dict: ``n_windows, n_speakers`` (enrolled, S), ``n_test_speakers,
    top1, top5, cmc`` (list, k = 1..S), ``n_sessions, session_top1, session_top5, chance``
    (1 / S), ``top1_over_chance, eer, min_dcf, p_target, n_target_trials,
    n_nontarget_trials`` and the subsampled curves ``roc: {fpr, tpr}`` and ``det: {p_fa,
    p_miss}`` (at most ``max_curve_points`` corners each, first and last kept).
    """
    classes = [str(c) for c in classes]
    idx = true_indices(classes, true_speaker)
    scores = scores if isinstance(scores, np.ndarray) else np.asarray(scores)
    _check_scores(scores, len(idx), len(classes))
    if not len(idx):
        raise ValueError("no test windows")
    n_classes = len(classes)
    rank, _, _ = ranks_and_predictions(scores, idx)
    cmc = cmc_curve(rank, n_classes)
    g_scores, g_true = session_scores(scores, idx, session_id)
    g_rank, _, _ = ranks_and_predictions(g_scores, g_true)
    p_fa, p_miss, n_t, n_non = verification_curve(scores, idx)
    chance = 1.0 / n_classes
    top1 = float(cmc[0])
    c_fa_, c_miss_ = _subsample_curve(p_fa, p_miss, max_curve_points)
    return {
        "n_windows": len(idx),
        "n_speakers": n_classes,
        "n_test_speakers": len(np.unique(idx)),
        "top1": top1,
        "top5": float(cmc[min(5, n_classes) - 1]),
        "cmc": cmc.tolist(),
        "n_sessions": len(g_rank),
        "session_top1": float(np.mean(g_rank == 1)),
        "session_top5": float(np.mean(g_rank <= 5)),
        "chance": chance,
        "top1_over_chance": top1 / chance,
        "eer": equal_error_rate(p_fa, p_miss),
        "min_dcf": min_dcf(p_fa, p_miss, p_target, c_miss, c_fa),
        "p_target": float(p_target),
        "n_target_trials": int(n_t),
        "n_nontarget_trials": int(n_non),
        "roc": {"fpr": c_fa_.tolist(), "tpr": (1.0 - c_miss_).tolist()},
        "det": {"p_fa": c_fa_.tolist(), "p_miss": c_miss_.tolist()},
    }


# --- predictions: per speaker, pooled, bootstrap ---------------------------------------------


def recompute_top1(predictions: pd.DataFrame) -> float:
    """Top-1 accuracy (micro over windows) from a predictions table: ``mean(rank == 1)``."""
    return float((predictions["rank"].to_numpy() == 1).mean())


def per_speaker_accuracy(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per (model, speaker): ``n_windows, top1, top5, mean_rank`` over all their test
    windows (all folds of the table); the macro view behind ``per_speaker.parquet``."""
    df = predictions.assign(_top1=predictions["rank"] == 1, _top5=predictions["rank"] <= 5)
    out = (
        df.groupby(["model", "speaker_id"], sort=True)
        .agg(
            n_windows=("rank", "size"),
            top1=("_top1", "mean"),
            top5=("_top5", "mean"),
            mean_rank=("rank", "mean"),
        )
        .reset_index()
    )
    return out[["model", "speaker_id", "n_windows", "top1", "top5", "mean_rank"]]


def _topk(stat: str) -> int:
    m = re.fullmatch(r"top(\d+)", stat)
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"unknown statistic {stat!r}; use 'top1', 'top5', ... 'top<k>'")
    return int(m.group(1))


def bootstrap_ci(
    predictions: pd.DataFrame,
    stat: str = "top1",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile confidence interval of a micro-averaged top-k accuracy by a speaker
    (cluster) bootstrap: speakers are drawn with replacement and all windows of a drawn
    speaker (over all folds) come along, so the interval reflects how accuracy varies
    between people rather than between (strongly dependent) windows of one person.

    Vectorised: per-speaker hit and window counts, then ``draws @ hits / draws @ n`` for a
    ``(n_boot, n_speakers)`` matrix of multinomial draw counts. One model per call.
    """
    reps = _replicates(predictions, stat, n_boot, seed, "bootstrap_ci")
    return (math.nan, math.nan) if reps is None else _percentile_ci(reps, level)


def bootstrap_p_value(
    predictions: pd.DataFrame,
    value: float,
    stat: str = "top1",
    n_boot: int = 1000,
    seed: int = 0,
) -> float:
    """Two-sided speaker-bootstrap p-value of "the top-k accuracy equals ``value``": twice
    the smaller share of :func:`bootstrap_ci`'s replicates (same draws for the same seed) on
    either side of ``value``, at least ``1 / n_boot``, at most 1. Hand-written because no
    installed library bootstraps a clustered mean against a fixed value; it is the test
    that inverts the percentile interval (``value`` outside the ``1 - p`` interval)."""
    reps = _replicates(predictions, stat, n_boot, seed, "bootstrap_p_value")
    return math.nan if reps is None else _p_value(reps, value)


def _replicates(
    predictions: pd.DataFrame, stat: str, n_boot: int, seed: int, caller: str
) -> np.ndarray | None:
    """Speaker-bootstrap replicates of one model's top-k (None without predictions)."""
    if "model" in predictions and predictions["model"].nunique() > 1:
        raise ValueError(f"{caller} expects the predictions of one model")
    hit = (predictions["rank"].to_numpy() <= _topk(stat)).astype(np.float64)
    if not len(hit):
        return None
    return _speaker_replicates(hit, pd.factorize(predictions["speaker_id"])[0], n_boot, seed)


def _percentile_ci(reps: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(reps, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _p_value(reps: np.ndarray, value: float) -> float:
    tail = min(float((reps <= value).mean()), float((reps >= value).mean()))
    return float(min(1.0, max(2.0 * tail, 1.0 / len(reps))))


def _speaker_replicates(
    per_window: np.ndarray, speaker: np.ndarray, n_boot: int, seed: int
) -> np.ndarray:
    """``n_boot`` speaker (cluster) bootstrap replicates of the mean of ``per_window``:
    ``draws @ sums / draws @ counts`` for a ``(n_boot, n_speakers)`` matrix of multinomial
    draw counts (``speaker``: codes 0..S-1)."""
    n_spk = int(speaker.max()) + 1
    sums = np.bincount(speaker, weights=per_window, minlength=n_spk)
    n = np.bincount(speaker, minlength=n_spk).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_spk, np.full(n_spk, 1.0 / n_spk), size=n_boot).astype(np.float64)
    return (draws @ sums) / (draws @ n)


def _speaker_bootstrap(
    per_window: np.ndarray, speaker: np.ndarray, n_boot: int, seed: int, level: float
) -> tuple[float, float]:
    """Percentile CI of the mean of ``per_window`` under a speaker (cluster) bootstrap
    (:func:`_speaker_replicates`)."""
    return _percentile_ci(_speaker_replicates(per_window, speaker, n_boot, seed), level)


def paired_comparison(
    predictions: pd.DataFrame,
    model: str,
    reference: str,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Top-1 of ``model`` minus that of ``reference`` on the test windows both scored.

    Paired, because both models saw the same folds and windows: ``top1_diff`` (micro over
    the shared windows) with a speaker-bootstrap percentile CI in which one draw of speakers
    serves both models (:func:`bootstrap_ci`'s cluster bootstrap of the difference), and a
    Wilcoxon signed-rank test over the per-speaker top-1 differences (``scipy.stats.wilcoxon``,
    zero differences split between the ranks; p = 1 when every speaker ties). ``speakers_*``:
    how many speakers the model identifies more / less / equally often than the reference.
    """
    key = [c for c in PREDICTION_KEY if c != "model"]
    a = predictions.loc[predictions["model"] == model, [*key, "rank"]]
    b = predictions.loc[predictions["model"] == reference, [*key, "rank"]]
    if a.empty or b.empty:
        missing = model if a.empty else reference
        raise ValueError(f"paired_comparison: no predictions of model {missing!r}")
    both = a.merge(b, on=key, suffixes=("_a", "_b"), validate="one_to_one")
    if both.empty:
        raise ValueError(f"paired_comparison: {model!r} and {reference!r} share no test window")
    diff = (both["rank_a"].to_numpy() == 1).astype(np.float64) - (
        both["rank_b"].to_numpy() == 1
    ).astype(np.float64)
    speaker = pd.factorize(both["speaker_id"])[0]
    lo, hi = _speaker_bootstrap(diff, speaker, n_boot, seed, level)
    per_speaker = np.bincount(speaker, weights=diff) / np.bincount(speaker)
    p = 1.0
    if np.any(per_speaker != 0):
        p = float(scipy.stats.wilcoxon(per_speaker, zero_method="zsplit").pvalue)
    return {
        "reference": reference,
        "n_windows": len(both),
        "n_speakers": len(per_speaker),
        "top1_diff": float(diff.mean()),
        "top1_diff_ci": [lo, hi],
        "wilcoxon_p": p,
        "speakers_better": int((per_speaker > 0).sum()),
        "speakers_worse": int((per_speaker < 0).sum()),
        "speakers_tied": int((per_speaker == 0).sum()),
    }


def merge_folds(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-fold prediction tables, checking their columns and that no
    (model, fold, speaker, session, window) appears twice."""
    frames = list(frames)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PREDICTION_COLUMNS})
    for i, f in enumerate(frames):
        if list(f.columns) != PREDICTION_COLUMNS:
            raise ValueError(
                f"prediction table {i} has columns {list(f.columns)}, expected {PREDICTION_COLUMNS}"
            )
    out = pd.concat(frames, ignore_index=True)
    dup = out.duplicated(PREDICTION_KEY)
    if dup.any():
        raise ValueError(
            f"{int(dup.sum())} duplicate prediction rows, e.g. "
            f"{out[dup].iloc[0][PREDICTION_KEY].to_dict()}"
        )
    return out


def summarize_model(
    predictions: pd.DataFrame,
    fold_metrics: Mapping[int, Mapping[str, Any]] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    chance: float | None = None,
) -> dict[str, Any]:
    """The ``metrics.json`` entry of one model from its pooled predictions (all folds) and,
    optionally, each fold's :func:`identification_metrics` (``fold -> dict``).

    ``top1``/``top5``: micro over all windows of all folds; ``top1_ci``: speaker bootstrap
    (:func:`bootstrap_ci`); ``top1_p_chance``: with ``chance``, the bootstrap p-value of
    "top-1 equals chance" (:func:`bootstrap_p_value`, the CI's draws), else None;
    ``per_fold_top1``: in fold order. From ``fold_metrics``:
    ``session_top1`` pooled over the test sessions of all folds, ``eer``/``min_dcf`` the
    unweighted means over folds (per-fold values kept as ``per_fold_eer`` /
    ``per_fold_min_dcf``); without them those keys are None. A fold's metrics must agree
    with its predictions (same number of windows and top-1), else ``ValueError``.
    """
    if predictions["model"].nunique() != 1:
        raise ValueError("summarize_model expects the predictions of exactly one model")
    by_fold = predictions.groupby("fold", sort=True)["rank"]
    per_fold_top1 = {int(f): float((r.to_numpy() == 1).mean()) for f, r in by_fold}
    per_fold_n = {int(f): len(r) for f, r in by_fold}
    # one set of replicates for the CI and the p-value (the same draws)
    reps = _replicates(predictions, "top1", n_boot, seed, "summarize_model")
    lo, hi = (math.nan, math.nan) if reps is None else _percentile_ci(reps, level)
    out: dict[str, Any] = {
        "n_windows": len(predictions),
        "n_test_speakers": int(predictions["speaker_id"].nunique()),
        "top1": recompute_top1(predictions),
        "top1_ci": [lo, hi],
        "top1_p_chance": None if chance is None or reps is None else _p_value(reps, chance),
        "top5": float((predictions["rank"].to_numpy() <= 5).mean()),
        "session_top1": None,
        "eer": None,
        "min_dcf": None,
        "per_fold_top1": [per_fold_top1[f] for f in sorted(per_fold_top1)],
    }
    if fold_metrics:
        folds = sorted(int(f) for f in fold_metrics)
        if folds != sorted(per_fold_top1):
            raise ValueError(
                f"fold metrics for folds {folds} but predictions for {sorted(per_fold_top1)}"
            )
        for f in folds:
            m = fold_metrics[f]
            if m["n_windows"] != per_fold_n[f] or abs(m["top1"] - per_fold_top1[f]) > 1e-9:
                raise ValueError(
                    f"fold {f}: metrics ({m['n_windows']} windows, top-1 "
                    f"{m['top1']:.6f}) disagree with the predictions "
                    f"({per_fold_n[f]}, {per_fold_top1[f]:.6f})"
                )
        n_sessions = np.array([fold_metrics[f]["n_sessions"] for f in folds], dtype=np.float64)
        session_hits = np.array([fold_metrics[f]["session_top1"] for f in folds]) * n_sessions
        out["session_top1"] = float(session_hits.sum() / n_sessions.sum())
        out["per_fold_eer"] = [float(fold_metrics[f]["eer"]) for f in folds]
        out["per_fold_min_dcf"] = [float(fold_metrics[f]["min_dcf"]) for f in folds]
        out["eer"] = float(np.mean(out["per_fold_eer"]))
        out["min_dcf"] = float(np.mean(out["per_fold_min_dcf"]))
    return out


# --- DNR against accuracy --------------------------------------------------------------------


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)


def dnr_vs_accuracy(
    per_speaker: pd.DataFrame,
    dnr: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    accuracy: str = "top1",
) -> dict[str, Any]:
    """Does a speaker's shape drift-to-noise ratio predict how well they are identified?

    ``per_speaker``: ``speaker_id`` and the accuracy column (one model); ``dnr``:
    ``speaker_id, dnr``. Speakers without a finite DNR or accuracy are dropped. Returns
    ``n, spearman_rho, spearman_p, pearson_r, pearson_p`` (scipy.stats) and percentile
    bootstrap intervals ``spearman_rho_ci``, ``pearson_r_ci`` from resampling speakers
    (resamples in which either variable is constant are skipped). With fewer than 3
    speakers (or a constant variable) the statistics are NaN.
    """
    if "model" in per_speaker and per_speaker["model"].nunique() > 1:
        raise ValueError("dnr_vs_accuracy expects the per-speaker accuracy of one model")
    df = per_speaker[["speaker_id", accuracy]].merge(dnr[["speaker_id", "dnr"]], on="speaker_id")
    df = df[np.isfinite(df["dnr"].to_numpy(float)) & np.isfinite(df[accuracy].to_numpy(float))]
    x, y = df["dnr"].to_numpy(np.float64), df[accuracy].to_numpy(np.float64)
    n = len(df)
    out: dict[str, Any] = {
        "n": n,
        "accuracy": accuracy,
        "spearman_rho": math.nan,
        "spearman_p": math.nan,
        "pearson_r": math.nan,
        "pearson_p": math.nan,
        "spearman_rho_ci": [math.nan, math.nan],
        "pearson_r_ci": [math.nan, math.nan],
        "level": level,
    }
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    rho, rho_p = scipy.stats.spearmanr(x, y)
    r, r_p = scipy.stats.pearsonr(x, y)
    out.update(
        spearman_rho=float(rho), spearman_p=float(rho_p), pearson_r=float(r), pearson_p=float(r_p)
    )
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, n, size=(n_boot, n))
    xb, yb = x[draw], y[draw]
    alpha = (1.0 - level) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        boot_rho = _rowwise_pearson(
            scipy.stats.rankdata(xb, axis=1), scipy.stats.rankdata(yb, axis=1)
        )
        boot_r = _rowwise_pearson(xb, yb)
        for key, values in (("spearman_rho_ci", boot_rho), ("pearson_r_ci", boot_r)):
            values = values[np.isfinite(values)]
            if len(values):
                out[key] = [float(v) for v in np.quantile(values, [alpha, 1.0 - alpha])]
    return out


def json_ready(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays turned into Python values and non-finite floats
    into None (strict JSON has no NaN or Infinity)."""
    if isinstance(obj, Mapping):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [json_ready(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
