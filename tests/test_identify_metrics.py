"""Identification/verification metrics, baselines and the ``shape`` feature set
(facedyn.identify.metrics, facedyn.identify.baselines); small hand-computed cases, fast."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_curve

from facedyn.dynamics.features import (
    feature_columns,
    feature_names,
    load_store,
    store_from_tables,
)
from facedyn.dynamics.windows import batch, make_windows
from facedyn.identify import metrics as M
from facedyn.identify.baselines import (
    ShapeOnly,
    StatsLogReg,
    align_windows,
    cap_per_class,
    chance_scores,
    statistic_names,
    window_means,
    window_statistics,
)
from facedyn.tables import write_table

CLASSES = ["a", "b", "c"]


def _metrics(scores, true, sessions=None, classes=CLASSES):
    sessions = [f"s_{t}" for t in true] if sessions is None else sessions
    return M.identification_metrics(np.asarray(scores, dtype=np.float32), classes, true, sessions)


# --- enrolment, ranks, top-k -----------------------------------------------------------------


def test_centroids_are_normalised_speaker_means_and_cosine_scores_rank_them():
    emb = np.array([[1, 0], [0.8, 0.6], [0, 1], [0, -1.0]], dtype=np.float32)
    classes, C = M.centroids(emb, ["y", "x", "x", "y"])
    assert classes == ["x", "y"]
    np.testing.assert_allclose(np.linalg.norm(C, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(C[0], np.array([0.8, 1.6]) / math.hypot(0.8, 1.6), atol=1e-6)
    np.testing.assert_allclose(C[1], np.array([1, -1]) / math.sqrt(2), atol=1e-6)
    s = M.cosine_scores(np.array([[0.0, 3.0]]), C)
    assert s.shape == (1, 2) and s.dtype == np.float32
    np.testing.assert_allclose(s[0], [1.6 / math.hypot(0.8, 1.6), -1 / math.sqrt(2)], atol=1e-6)


def _argmax_centroid_top1(ref, ref_labels, query, query_labels):
    """Reference nearest-centroid top-1: argmax of the float64 cosine of every query to each
    label's re-normalised mean of ``ref``."""
    classes, inverse = np.unique(ref_labels, return_inverse=True)
    sums = np.zeros((len(classes), ref.shape[1]))
    np.add.at(sums, inverse, ref)
    sums /= np.linalg.norm(sums, axis=1, keepdims=True)
    return float(np.mean(classes[np.argmax(query @ sums.T, axis=1)] == query_labels))


def test_nearest_centroid_top1_is_the_top1_of_the_centroid_scores():
    # validation and test share one top-1: the argmax over centroids, and the top-1 that
    # identification_metrics gives for centroid_scores, on random embeddings of up to 12
    # integer-labelled classes (labels compared as strings: "10" sorts before "2")
    rng = np.random.default_rng(0)
    for _ in range(50):
        n_classes, dim = int(rng.integers(2, 13)), int(rng.integers(2, 33))
        means = rng.normal(size=(n_classes, dim))
        ref_labels = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, 100)])
        query_labels = rng.integers(0, n_classes, 80)
        spread = rng.uniform(0.5, 3.0)
        ref = (means[ref_labels] + spread * rng.normal(size=(len(ref_labels), dim))).astype(
            np.float32
        )
        query = (means[query_labels] + spread * rng.normal(size=(80, dim))).astype(np.float32)
        top1 = M.nearest_centroid_top1(ref, ref_labels, query, query_labels)
        assert top1 == _argmax_centroid_top1(ref, ref_labels, query, query_labels)
        classes, scores = M.centroid_scores(ref, ref_labels, query)
        sessions = np.zeros(len(query), dtype=str)
        metrics = M.identification_metrics(scores, classes, query_labels.astype(str), sessions)
        assert top1 == metrics["top1"]
        _, C = M.centroids(ref, ref_labels)
        np.testing.assert_array_equal(scores, M.cosine_scores(query, C))
    assert math.isnan(M.nearest_centroid_top1(ref, ref_labels, query[:0], query_labels[:0]))


def test_nearest_centroid_top1_counts_a_tie_at_the_top_as_a_miss():
    ref = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    query = np.array([[1.0, 1.0], [1.0, 0.1]], dtype=np.float32)  # a tie, then a hit
    assert M.nearest_centroid_top1(ref, ["a", "b"], query, ["a", "a"]) == 0.5


def test_topk_ranks_and_cmc_hand_computed():
    scores = [
        [0.9, 0.1, 0.0],  # a: rank 1
        [0.9, 0.5, 0.1],  # b: rank 2
        [0.9, 0.5, 0.1],  # c: rank 3
        [0.2, 0.3, 0.4],
    ]  # c: rank 1
    true = ["a", "b", "c", "c"]
    m = _metrics(scores, true)
    assert m["top1"] == pytest.approx(0.5)
    assert m["top5"] == pytest.approx(1.0)  # k clipped to S = 3
    assert m["cmc"] == pytest.approx([0.5, 0.75, 1.0])
    assert m["chance"] == pytest.approx(1 / 3) and m["top1_over_chance"] == pytest.approx(1.5)
    df = M.predictions_frame(np.asarray(scores), CLASSES, true, ["s"] * 4, np.arange(4), "m", 0)
    assert df["rank"].tolist() == [1, 2, 3, 1]
    assert df["predicted_speaker_id"].tolist() == ["a", "a", "a", "c"]
    assert df["score"].tolist() == pytest.approx([0.9, 0.5, 0.1, 0.4])


def test_ties_count_pessimistically_and_prediction_agrees_with_rank():
    scores = np.array(
        [
            [0.5, 0.5, 0.1],  # a tied with b at the top: rank 2, predicted b
            [0.5, 0.5, 0.5],  # constant row: rank 3
            [0.7, 0.2, 0.2],
        ]
    )  # b tied with c below a: rank 3
    df = M.predictions_frame(scores, CLASSES, ["a", "b", "b"], ["s"] * 3, np.arange(3), "m", 0)
    assert df["rank"].tolist() == [2, 3, 3]
    assert df["predicted_speaker_id"].tolist() == ["b", "a", "a"]
    assert ((df["predicted_speaker_id"] == df["speaker_id"]) == (df["rank"] == 1)).all()
    assert M.recompute_top1(df) == 0.0


def test_cmc_is_monotone_and_ends_at_one():
    rng = np.random.default_rng(0)
    classes = [f"p{i:02d}" for i in range(30)]
    true = rng.choice(classes, size=400)
    scores = rng.normal(size=(400, 30)).astype(np.float32)
    scores[np.arange(400), M.true_indices(classes, true)] += 1.0
    m = M.identification_metrics(scores, classes, true, np.zeros(400, dtype=str))
    cmc = np.array(m["cmc"])
    assert len(cmc) == 30 and (np.diff(cmc) >= 0).all() and cmc[-1] == pytest.approx(1.0)
    assert cmc[0] == pytest.approx(m["top1"]) and cmc[4] == pytest.approx(m["top5"])


def test_session_level_averages_score_vectors_per_speaker_and_session():
    # speaker a, session s1: windows vote b, a, a with margins; mean favours a
    scores = [
        [0.0, 1.0, 0.0],
        [0.8, 0.1, 0.0],
        [0.8, 0.1, 0.0],
        # speaker b, session s2: one strong wrong window outweighs two weak right ones
        [0.0, 0.2, 0.9],
        [0.0, 0.3, 0.2],
        [0.0, 0.3, 0.2],
    ]
    true = ["a", "a", "a", "b", "b", "b"]
    m = _metrics(scores, true, ["s1", "s1", "s1", "s2", "s2", "s2"])
    assert m["top1"] == pytest.approx(4 / 6)
    assert m["n_sessions"] == 2 and m["session_top1"] == pytest.approx(0.5)
    # a speaker's two sessions are two trials
    m2 = _metrics(scores, true, ["s1", "s1", "s1", "s2", "s3", "s3"])
    assert m2["n_sessions"] == 3 and m2["session_top1"] == pytest.approx(2 / 3)


def test_unenrolled_test_speaker_is_an_error():
    with pytest.raises(ValueError, match="not enrolled"):
        M.predictions_frame(np.zeros((1, 3)), CLASSES, ["z"], ["s"], [0], "m", 0)
    with pytest.raises(ValueError, match="not enrolled"):
        _metrics(np.zeros((1, 3)), ["z"])


def test_predictions_frame_has_exactly_the_design_columns():
    df = M.predictions_frame(
        np.eye(3), CLASSES, CLASSES, ["s1", "s2", "s3"], np.array([0, 15, 30]), "conformer", 2
    )
    assert list(df.columns) == [
        "model",
        "fold",
        "speaker_id",
        "session_id",
        "window_start",
        "predicted_speaker_id",
        "rank",
        "score",
    ]
    assert df["model"].unique().tolist() == ["conformer"] and (df["fold"] == 2).all()
    assert df["window_start"].dtype == np.int64 and df["rank"].dtype == np.int64
    assert all(isinstance(v, str) for v in df["speaker_id"])


# --- verification ----------------------------------------------------------------------------


def test_eer_and_min_dcf_of_perfect_separation_are_zero():
    rng = np.random.default_rng(1)
    classes = [f"p{i}" for i in range(10)]
    true = rng.choice(classes, size=200)
    scores = rng.uniform(-1, 0, size=(200, 10)).astype(np.float32)
    scores[np.arange(200), M.true_indices(classes, true)] = rng.uniform(0.5, 1, size=200)
    m = M.identification_metrics(scores, classes, true, true)
    assert m["eer"] == 0.0 and m["min_dcf"] == 0.0 and m["top1"] == 1.0
    assert m["n_target_trials"] == 200 and m["n_nontarget_trials"] == 200 * 9


def test_eer_of_identical_distributions_is_one_half_and_min_dcf_at_most_one():
    rng = np.random.default_rng(2)
    classes = [f"p{i}" for i in range(20)]
    true = rng.choice(classes, size=3000)
    scores = rng.normal(size=(3000, 20)).astype(np.float32)
    m = M.identification_metrics(scores, classes, true, true)
    assert m["eer"] == pytest.approx(0.5, abs=0.03)
    assert 0.9 <= m["min_dcf"] <= 1.0
    assert len(m["roc"]["fpr"]) <= 500 and len(m["det"]["p_miss"]) == len(m["det"]["p_fa"])


def _corners(x, y):
    """The corners of a polyline: points whose neighbours are not collinear with them."""
    out = []
    for p in zip(x.tolist(), y.tolist(), strict=True):
        while len(out) >= 2:
            (ax, ay), (bx, by) = out[-2], out[-1]
            if abs((bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax)) > 1e-12:
                break
            out.pop()
        if not out or out[-1] != p:
            out.append(p)
    return [(round(a, 10), round(b, 10)) for a, b in out]


def _brute_force(scores, idx):
    """roc_curve on every (window, speaker) trial: the reference for the compressed ROC."""
    target = np.zeros(scores.shape, dtype=bool)
    target[np.arange(len(idx)), idx] = True
    fpr, tpr, _ = roc_curve(target.ravel(), scores.ravel().astype(np.float64))
    return fpr, 1 - tpr


@pytest.mark.parametrize("decimals", [None, 1])  # continuous scores, and heavy ties
def test_compressed_roc_matches_roc_curve_on_all_trials(decimals, monkeypatch):
    monkeypatch.setattr(M, "CHUNK_ELEMENTS", 64)  # many chunks
    rng = np.random.default_rng(3)
    classes = [f"p{i}" for i in range(7)]
    true = rng.choice(classes, size=300)
    idx = M.true_indices(classes, true)
    scores = rng.normal(size=(300, 7))
    scores[np.arange(300), idx] += 1.2
    if decimals is not None:
        scores = np.round(scores, decimals)
    scores = scores.astype(np.float32)
    p_fa, p_miss, n_t, n_non = M.verification_curve(scores, idx)
    ref_fa, ref_miss = _brute_force(scores, idx)
    assert (n_t, n_non) == (300, 300 * 6)
    assert M.equal_error_rate(p_fa, p_miss) == pytest.approx(M.equal_error_rate(ref_fa, ref_miss))
    for p in (0.01, 0.1, 0.5):
        assert M.min_dcf(p_fa, p_miss, p) == pytest.approx(M.min_dcf(ref_fa, ref_miss, p))
    # the same polyline: equal corners once collinear middle points are dropped
    assert _corners(p_fa, p_miss) == _corners(ref_fa, ref_miss)
    # and the chunked ranks and sessions equal the unchunked ones
    m = M.identification_metrics(scores, classes, true, rng.choice(["s1", "s2"], size=300))
    monkeypatch.setattr(M, "CHUNK_ELEMENTS", 1 << 25)
    m2 = M.identification_metrics(
        scores, classes, true, np.random.default_rng(3).choice(["s1", "s2"], size=300)
    )
    assert m["top1"] == m2["top1"] and m["cmc"] == m2["cmc"]


def test_min_dcf_hand_computed():
    # one target at 0.5; non-targets 0.9 and 0.1. Thresholds: reject all (P_miss 1, P_fa 0),
    # above 0.9 only (1, 1/2), from 0.5 (0, 1/2), all (0, 1)
    p_fa, p_miss, _, _ = M.verification_curve(np.array([[0.5, 0.9, 0.1]]), np.array([0]))
    # p_t = 0.01: rejecting all costs 0.01 / 0.01 = 1; from 0.5: 0.5 * 0.99 / 0.01 = 49.5
    assert M.min_dcf(p_fa, p_miss, 0.01) == pytest.approx(1.0)
    # p_t = 0.5: from 0.5 costs (0 + 0.5 * 0.5) / 0.5 = 0.5
    assert M.min_dcf(p_fa, p_miss, 0.5) == pytest.approx(0.5)
    assert M.equal_error_rate(p_fa, p_miss) == pytest.approx(0.5)


# --- pooled predictions, bootstrap, summary --------------------------------------------------


def _predictions(acc_by_speaker, n_windows=20, model="m", fold=0, seed=0):
    """A predictions table whose speakers have the given fractions of rank-1 windows."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, acc in acc_by_speaker.items():
        hits = rng.permutation(np.arange(n_windows) < round(acc * n_windows))
        for w, hit in enumerate(hits):
            rows.append(
                {
                    "model": model,
                    "fold": fold,
                    "speaker_id": s,
                    "session_id": f"{s}_x",
                    "window_start": w * 30,
                    "predicted_speaker_id": s if hit else "other",
                    "rank": 1 if hit else 1 + int(rng.integers(1, 10)),
                    "score": 0.0,
                }
            )
    return pd.DataFrame(rows, columns=M.PREDICTION_COLUMNS)


def test_bootstrap_ci_resamples_speakers_and_narrows_with_more_of_them():
    # one speaker always right, one always wrong: the speaker bootstrap sees two clusters
    two = _predictions({"a": 1.0, "b": 0.0}, n_windows=200)
    lo, hi = M.bootstrap_ci(two, n_boot=2000)
    assert lo == 0.0 and hi == 1.0  # a window bootstrap would give about 0.5 +- 0.05
    rng = np.random.default_rng(5)
    few = _predictions({f"p{i}": a for i, a in enumerate(rng.uniform(0, 1, 10))})
    many = _predictions({f"p{i}": a for i, a in enumerate(rng.uniform(0, 1, 400))})
    widths = []
    for df in (few, many):
        lo, hi = M.bootstrap_ci(df, n_boot=1000, seed=1)
        assert lo <= M.recompute_top1(df) <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 3
    assert M.bootstrap_ci(few, seed=1) == M.bootstrap_ci(few, seed=1)  # deterministic
    lo5, hi5 = M.bootstrap_ci(few, stat="top5")
    assert lo5 <= (few["rank"] <= 5).mean() <= hi5
    with pytest.raises(ValueError, match="unknown statistic"):
        M.bootstrap_ci(few, stat="eer")


def test_bootstrap_p_value_against_a_fixed_top1_inverts_the_percentile_interval():
    rng = np.random.default_rng(7)
    df = _predictions({f"p{i}": a for i, a in enumerate(rng.uniform(0.1, 0.5, 30))})
    lo, hi = M.bootstrap_ci(df, n_boot=1000, seed=3)
    top1 = M.recompute_top1(df)
    assert M.bootstrap_p_value(df, top1, n_boot=1000, seed=3) > 0.5  # the estimate itself
    # far outside the replicates: the smallest p the replicates can give
    assert M.bootstrap_p_value(df, 0.0, n_boot=1000, seed=3) == pytest.approx(1e-3)
    assert M.bootstrap_p_value(df, 1.0, n_boot=1000, seed=3) == pytest.approx(1e-3)
    # a value inside the 95 % interval is not rejected at 0.05, one well outside it is
    for value in np.linspace(0.0, 0.8, 81):
        p = M.bootstrap_p_value(df, float(value), n_boot=1000, seed=3)
        if lo + 0.01 < value < hi - 0.01:
            assert p >= 0.05
        if value < lo - 0.01 or value > hi + 0.01:
            assert p <= 0.05
    entry = M.summarize_model(df, chance=0.0, n_boot=1000, seed=3)
    assert entry["top1_p_chance"] == pytest.approx(1e-3)
    assert M.summarize_model(df)["top1_p_chance"] is None


def test_paired_comparison_of_two_models_on_the_same_windows():
    rng = np.random.default_rng(3)
    acc = {f"p{i}": a for i, a in enumerate(rng.uniform(0.2, 0.6, 40))}
    ref = _predictions(acc, model="ref", seed=1)
    gain = rng.uniform(0.1, 0.4, len(acc))  # every speaker gains, by different amounts
    better = _predictions(
        {s: a + g for (s, a), g in zip(acc.items(), gain, strict=True)}, model="new", seed=2
    )
    both = pd.concat([better, ref], ignore_index=True)
    c = M.paired_comparison(both, "new", "ref", n_boot=2000)
    expected = M.recompute_top1(better) - M.recompute_top1(ref)
    assert c["top1_diff"] == pytest.approx(expected)
    lo, hi = c["top1_diff_ci"]
    assert 0.0 < lo < expected < hi  # a clear, consistent gain excludes 0
    assert c["wilcoxon_p"] < 1e-6 and c["speakers_better"] == 40 and c["n_windows"] == 800
    assert c["n_speakers"] == 40 and c["reference"] == "ref"
    # pairing removes what the models share (who is easy to recognise): the interval of
    # the difference is narrower than the reference's own
    own = M.bootstrap_ci(ref, n_boot=2000)
    assert hi - lo < own[1] - own[0]
    # a model against itself: no difference, p = 1, every speaker tied
    same = pd.concat([ref, ref.assign(model="copy")], ignore_index=True)
    tie = M.paired_comparison(same, "copy", "ref")
    assert tie["top1_diff"] == 0.0 and tie["top1_diff_ci"] == [0.0, 0.0]
    assert tie["wilcoxon_p"] == 1.0 and tie["speakers_tied"] == 40
    # only windows both scored are compared
    part = pd.concat([better[better["window_start"] < 300], ref], ignore_index=True)
    assert M.paired_comparison(part, "new", "ref")["n_windows"] == 400
    with pytest.raises(ValueError, match="no predictions of model 'nope'"):
        M.paired_comparison(both, "nope", "ref")
    with pytest.raises(ValueError, match="share no test window"):
        M.paired_comparison(pd.concat([better.assign(fold=1), ref]), "new", "ref")


def test_per_speaker_accuracy():
    df = _predictions({"a": 0.5, "b": 1.0}, n_windows=4)
    ps = M.per_speaker_accuracy(df)
    assert list(ps.columns) == ["model", "speaker_id", "n_windows", "top1", "top5", "mean_rank"]
    assert ps.set_index("speaker_id")["top1"].to_dict() == {"a": 0.5, "b": 1.0}
    assert ps.set_index("speaker_id").loc["b", "mean_rank"] == 1.0
    assert (ps["n_windows"] == 4).all()


def test_summary_pools_folds_and_recomputed_top1_matches_metrics():
    rng = np.random.default_rng(6)
    classes = [f"p{i}" for i in range(12)]
    preds, fold_metrics = [], {}
    for fold in range(3):
        true = rng.choice(classes, size=150)
        sessions = np.array([f"{t}_sess{fold}" for t in true])
        scores = rng.normal(size=(150, 12)).astype(np.float32)
        scores[np.arange(150), M.true_indices(classes, true)] += 1.5 + fold
        fold_metrics[fold] = M.identification_metrics(scores, classes, true, sessions)
        p = M.predictions_frame(scores, classes, true, sessions, np.arange(150) * 15, "tcn", fold)
        assert M.recompute_top1(p) == pytest.approx(fold_metrics[fold]["top1"])
        preds.append(p)
    merged = M.merge_folds(preds)
    s = M.summarize_model(merged, fold_metrics, n_boot=200)
    assert s["top1"] == pytest.approx(np.mean([fold_metrics[f]["top1"] for f in range(3)]))
    assert s["per_fold_top1"] == pytest.approx([fold_metrics[f]["top1"] for f in range(3)])
    assert s["per_fold_top1"][0] < s["per_fold_top1"][2]
    assert s["top1_ci"][0] <= s["top1"] <= s["top1_ci"][1]
    assert s["eer"] == pytest.approx(np.mean([fold_metrics[f]["eer"] for f in range(3)]))
    n_sess = [fold_metrics[f]["n_sessions"] for f in range(3)]
    assert s["session_top1"] == pytest.approx(
        sum(fold_metrics[f]["session_top1"] * n_sess[f] for f in range(3)) / sum(n_sess)
    )
    json.dumps(M.json_ready(s), allow_nan=False)
    no_verification = M.summarize_model(merged, None, n_boot=50)
    assert no_verification["eer"] is None and no_verification["top1"] == s["top1"]
    with pytest.raises(ValueError, match="duplicate"):
        M.merge_folds([preds[0], preds[0]])
    with pytest.raises(ValueError, match="disagree"):
        M.summarize_model(merged, {**fold_metrics, 1: fold_metrics[0]})


def test_identification_metrics_are_strict_json():
    rng = np.random.default_rng(7)
    m = M.identification_metrics(
        rng.normal(size=(50, 4)).astype(np.float32),
        ["a", "b", "c", "d"],
        rng.choice(list("abcd"), 50),
        rng.choice(["x", "y"], 50),
    )
    json.dumps(m, allow_nan=False)
    assert M.json_ready({"x": np.float32(np.nan), "y": np.arange(2)}) == {"x": None, "y": [0, 1]}


# --- DNR against accuracy --------------------------------------------------------------------


def test_dnr_vs_accuracy_recovers_a_planted_negative_monotone_relation():
    rng = np.random.default_rng(8)
    n = 60
    dnr = rng.uniform(0.1, 5, n)
    acc = np.exp(-dnr)  # monotone decreasing, not linear
    speakers = [f"p{i}" for i in range(n)]
    per_speaker = pd.DataFrame({"model": "m", "speaker_id": speakers, "top1": acc})
    dnr_df = pd.DataFrame(
        {"speaker_id": [*speakers, "q1", "q2"], "dnr": [*dnr, np.nan, 1.0]}
    )  # q1: no DNR, q2: no accuracy
    out = M.dnr_vs_accuracy(per_speaker, dnr_df, n_boot=300)
    assert out["n"] == n
    assert out["spearman_rho"] == pytest.approx(-1.0)
    assert out["spearman_p"] < 1e-10
    assert -1.0 < out["pearson_r"] < -0.7
    assert out["spearman_rho_ci"] == pytest.approx([-1.0, -1.0])
    assert out["pearson_r_ci"][0] <= out["pearson_r"] <= out["pearson_r_ci"][1]
    flat = [v for k, v in out.items() if k != "accuracy"]
    assert all(np.isfinite(np.asarray(v, dtype=float)).all() for v in flat)
    noisy = M.dnr_vs_accuracy(per_speaker.assign(top1=acc + rng.normal(0, 0.2, n)), dnr_df)
    lo, hi = noisy["spearman_rho_ci"]
    assert lo <= noisy["spearman_rho"] <= hi < 0 and hi - lo > 0.05
    tiny = M.dnr_vs_accuracy(per_speaker.head(2), dnr_df)
    assert tiny["n"] == 2 and math.isnan(tiny["spearman_rho"])


# --- baselines -------------------------------------------------------------------------------

RATE = 15.0


def test_window_statistics_shapes_finiteness_and_meaning():
    t = np.arange(120) / RATE
    sine = np.sin(2 * np.pi * 2.0 * t)  # 2 Hz: in the 1-3 Hz band
    x = np.stack([np.full(120, 3.0), sine, np.cumsum(np.ones(120))], axis=1)[None]
    x = np.concatenate([x, np.zeros_like(x)]).astype(np.float32)  # + an all-zero window
    z = window_statistics(x, RATE)
    names = statistic_names(["const", "sine", "ramp"])
    assert z.shape == (2, 12 * 3) and len(names) == z.shape[1] and np.isfinite(z).all()
    row = dict(zip(names, z[0], strict=True))
    assert row["mean:const"] == 3.0 and row["std:const"] == 0.0
    assert row["ac1:const"] == 0.0 and row["zcr:const"] == 0.0
    assert row["band_1_3hz:sine"] == pytest.approx(1.0, abs=1e-3)
    assert row["band_0_1hz:sine"] == pytest.approx(0.0, abs=1e-3)
    assert row["velocity:ramp"] == pytest.approx(RATE)
    assert row["ac1:sine"] == pytest.approx(np.cos(2 * np.pi * 2 / RATE), abs=0.02)
    assert row["zcr:sine"] == pytest.approx(4 * 8 / 119, abs=0.02)  # 4 per second for 8 s
    assert row["p50:sine"] == pytest.approx(0.0, abs=0.05)
    assert (z[1] == 0).all()


def _oscillators(n_speakers=6, n_windows=40, T=60, F=3, seed=0):
    """Windows whose speakers differ in oscillation frequency and amplitude (random phase
    and noise per window), so only dynamics statistics tell them apart."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) / RATE
    freqs = np.linspace(0.5, 5.0, n_speakers)
    amps = np.linspace(0.5, 2.0, n_speakers)[rng.permutation(n_speakers)]
    x, y = [], []
    for s in range(n_speakers):
        phase = rng.uniform(0, 2 * np.pi, (n_windows, 1, F))
        w = amps[s] * np.sin(2 * np.pi * freqs[s] * t[None, :, None] + phase)
        x.append(w + rng.normal(0, 0.3, w.shape) + rng.normal(0, 1, (n_windows, 1, F)))
        y += [f"spk{s}"] * n_windows
    return np.concatenate(x).astype(np.float32), np.array(y)


def test_stats_logreg_identifies_speakers_by_dynamics_and_not_shuffled_labels():
    x, y = _oscillators(seed=0)
    rng = np.random.default_rng(11)
    order = rng.permutation(len(x))
    train, test = order[: len(x) // 2], order[len(x) // 2 :]
    model = StatsLogReg(rate=RATE, C=1.0).fit(x[train], y[train])
    s = model.scores(x[test])
    assert s.shape == (len(test), 6) and model.classes_ == sorted(set(y))
    assert np.isfinite(s).all() and np.allclose(np.exp(s).sum(1), 1.0, atol=1e-4)
    m = M.identification_metrics(s, model.classes_, y[test], y[test])
    assert m["top1"] > 0.9
    # deterministic
    s2 = StatsLogReg(rate=RATE, C=1.0).fit(x[train], y[train]).scores(x[test])
    np.testing.assert_array_equal(s, s2)
    # label-shuffled training: nothing to learn
    shuffled = np.random.default_rng(12).permutation(y[train])
    sh = StatsLogReg(rate=RATE, C=0.1).fit(x[train], shuffled).scores(x[test])
    assert M.identification_metrics(sh, model.classes_, y[test], y[test])["top1"] < 0.4


def test_shape_only_separates_speakers_whose_shape_means_differ():
    rng = np.random.default_rng(13)
    centers = rng.normal(0, 1, (5, 8))
    x = np.concatenate([c + rng.normal(0, 0.3, (30, 20, 8)) for c in centers])
    y = np.repeat([f"s{i}" for i in range(5)], 30)
    train = np.tile(np.arange(30) < 15, 5)
    model = ShapeOnly().fit(x[train], y[train])
    s = model.scores(x[~train])
    assert M.identification_metrics(s, model.classes_, y[~train], y[~train])["top1"] == 1.0
    np.testing.assert_allclose(model.scores(x[~train].mean(axis=1)), s, atol=1e-5)
    # two speakers: the binary path gives two log-probability columns too
    two = np.isin(y, ["s0", "s1"])
    s2 = ShapeOnly().fit(x[two & train], y[two & train]).scores(x[two & ~train])
    assert s2.shape == (int((two & ~train).sum()), 2)
    assert np.allclose(np.exp(s2).sum(1), 1.0, atol=1e-5)


def test_cap_per_class_and_chance_scores():
    labels = np.array(["a"] * 10 + ["b"] * 3)
    keep = cap_per_class(labels, 4, seed=0)
    assert (labels[keep] == "a").sum() == 4 and (labels[keep] == "b").sum() == 3
    assert (np.diff(keep) > 0).all() and keep.tolist() == cap_per_class(labels, 4, 0).tolist()
    classes = [f"p{i}" for i in range(50)]
    true = np.random.default_rng(0).choice(classes, 4000)
    m = M.identification_metrics(chance_scores(4000, classes, seed=0), classes, true, true)
    assert m["top1"] == pytest.approx(1 / 50, abs=0.01)
    assert m["eer"] == pytest.approx(0.5, abs=0.03)


# --- the shape feature set -------------------------------------------------------------------


def _flame_table(n, seed, invalid=(), n_expr=4, n_shape=5):
    rng = np.random.default_rng(seed)
    cols = [
        *(f"shape_{k:03d}" for k in range(n_shape)),
        *(f"expr_{k:03d}" for k in range(n_expr)),
        "jaw_0",
        "jaw_1",
        "jaw_2",
    ]
    df = pd.DataFrame(rng.normal(size=(n, len(cols))), columns=cols)
    df.insert(0, "frame", np.arange(n) * 2)
    df.insert(1, "time_s", np.arange(n) / RATE)
    valid = np.ones(n, dtype=bool)
    valid[list(invalid)] = False
    df.insert(2, "valid", valid)
    df.loc[~valid, cols] = np.nan
    return df


def test_shape_feature_set_and_window_alignment(tmp_path, caplog):
    assert feature_columns("shape", 50, n_shape=3) == ["shape_000", "shape_001", "shape_002"]
    assert feature_columns("shape", 50)[-1] == "shape_019"
    assert feature_names("shape", 4, True, n_shape=2)[-1] == "d_shape_001"
    assert feature_columns("expr_jaw", 2) == ["expr_000", "expr_001", "jaw_0", "jaw_1", "jaw_2"]
    videos = [{"session_id": f"s{i}", "speaker_id": f"p{i}"} for i in range(2)]
    tables = [_flame_table(90, 0, invalid=[30]), _flame_table(90, 1)]
    with caplog.at_level(logging.WARNING):
        shape = store_from_tables(videos, tables, feature_set="shape", n_shape=9)
    assert shape.feature_names == [f"shape_{k:03d}" for k in range(5)]  # clipped
    assert "n_shape is 9" in caplog.text and "n_expr" not in caplog.text
    paths = []
    for v, t in zip(videos, tables, strict=True):
        paths.append(tmp_path / f"{v['session_id']}.parquet")
        write_table(t, paths[-1])
    loaded = load_store(
        [{**v, "path": str(p)} for v, p in zip(videos, paths, strict=True)],
        feature_set="shape",
        n_shape=3,
    )
    assert loaded.feature_names == ["shape_000", "shape_001", "shape_002"]
    np.testing.assert_array_equal(loaded.features, shape.features[:, :3])
    # the dynamics store drops each run's first row (velocity): other rows, same frames
    dyn = store_from_tables(videos, tables, n_expr=4, velocity=True)
    win = make_windows(dyn, 2.0, 0.5)
    aligned, found = align_windows(dyn, win, shape)
    assert found.all() and len(aligned) == len(win)
    assert (aligned.start != win.start).any()
    np.testing.assert_array_equal(
        shape.frame[aligned.first_rows(shape)], dyn.frame[win.first_rows(dyn)]
    )
    x = batch(shape, aligned)
    ref = np.stack(
        [
            tables[v]
            .loc[
                tables[v]["frame"].isin(
                    dyn.frame[dyn.offsets[v] + s : dyn.offsets[v] + s + win.length]
                ),
                [f"shape_{k:03d}" for k in range(5)],
            ]
            .to_numpy()
            for v, s in zip(win.video, win.start, strict=True)
        ]
    )
    np.testing.assert_allclose(x, ref, atol=1e-6)
    np.testing.assert_allclose(window_means(shape, aligned), ref.mean(axis=1), atol=1e-6)
    # a frame invalid only for shape: the windows covering it are not found
    t2 = [t.copy() for t in tables]
    t2[1].loc[45, "shape_000"] = np.nan
    shape2 = store_from_tables(videos, t2, feature_set="shape", n_shape=5)
    _, found2 = align_windows(dyn, win, shape2)
    t0, t1 = win.times(dyn)
    covers = (win.video == 1) & (t0 <= 45 / RATE) & (t1 > 45 / RATE)
    assert covers.any() and (found2 == ~covers).all()
    with pytest.raises(ValueError, match="unknown feature set"):
        feature_columns("pose", 4)
