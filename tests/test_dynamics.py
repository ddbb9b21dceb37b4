"""DNR, features, windows, folds and experiment settings (facedyn.dynamics); no video."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest

from facedyn.dynamics.dnr import SessionShapes, compute_dnr
from facedyn.dynamics.features import store_from_tables
from facedyn.dynamics.folds import (
    LeakageError,
    _conflicts,
    assert_no_leakage,
    build_folds,
    fold_windows,
    validation_split,
)
from facedyn.dynamics.windows import (
    Normalizer,
    Windows,
    batch,
    covered_rows,
    make_windows,
    shift_room,
)
from facedyn.face.video import sample_indices
from facedyn.identify.experiments import ExperimentError, experiment_names, experiment_settings

# --- DNR -------------------------------------------------------------------------------------


def _exact_speaker(rng, speaker, n_sessions, drift, noises, dims=6, frames=200, center=None):
    """Sessions whose means have RMS spread exactly ``drift`` and whose frames have RMS
    distance exactly ``noises[k]`` from their session mean."""
    m = rng.normal(size=(n_sessions, dims))
    m -= m.mean(axis=0)
    if n_sessions > 1:
        m *= drift / math.sqrt(((m**2).sum(axis=1)).mean())
    m += rng.normal(size=dims) * 3 if center is None else center
    out = []
    for k in range(n_sessions):
        e = rng.normal(size=(frames, dims))
        e -= e.mean(axis=0)
        e *= noises[k] / math.sqrt(((e**2).sum(axis=1)).mean())
        out.append(SessionShapes(speaker, f"s{speaker}_{k}", m[k] + e))
    return out


def test_dnr_recovers_constructed_drift_and_noise_within_5_percent():
    rng = np.random.default_rng(0)
    truth = {"a": (2.0, [0.5, 1.0, 1.5]), "b": (0.4, [1.0, 1.0]), "c": (5.0, [0.2, 0.3, 0.4, 0.1])}
    sessions = [
        s for name, (d, n) in truth.items() for s in _exact_speaker(rng, name, len(n), d, n)
    ]
    res = compute_dnr(sessions, n_shape=6, standardize=False, min_valid_frames=10)
    sp = res.speakers.set_index("speaker_id")
    for name, (drift, noises) in truth.items():
        noise = math.sqrt(np.mean(np.square(noises)))
        assert sp.loc[name, "drift"] == pytest.approx(drift, rel=0.05)
        assert sp.loc[name, "noise"] == pytest.approx(noise, rel=0.05)
        assert sp.loc[name, "dnr"] == pytest.approx(drift / noise, rel=0.05)
        assert sp.loc[name, "n_sessions"] == len(noises)
    assert res.summary["n_speakers_with_dnr"] == 3
    assert res.summary["dnr"]["median"] == pytest.approx(sp["dnr"].median())
    per_session = res.sessions.set_index("session_id")
    assert per_session.loc["sa_2", "noise"] == pytest.approx(1.5)
    assert list(res.sessions.columns[:6]) == [
        "speaker_id",
        "session_id",
        "n_valid",
        "noise",
        "used",
        "reason",
    ]
    assert "mean_shape_005" in res.sessions


def test_dnr_recovers_sampled_population_values():
    """Gaussian frames around Gaussian session means: the estimates approach the
    population drift and noise (many frames, many sessions)."""
    rng = np.random.default_rng(1)
    dims, sd_between, sd_within, k = 10, 0.8, 0.5, 400
    means = rng.normal(scale=sd_between, size=(k, dims))
    sessions = [
        SessionShapes("p", f"s{i}", means[i] + rng.normal(scale=sd_within, size=(500, dims)))
        for i in range(k)
    ]
    sp = compute_dnr(sessions, n_shape=dims, standardize=False).speakers.iloc[0]
    # population: E|m_k - mbar|^2 = dims sd_b^2 (K-1)/K, E n_k^2 = dims sd_w^2 (T-1)/T
    assert sp["drift"] == pytest.approx(sd_between * math.sqrt(dims * (k - 1) / k), rel=0.05)
    assert sp["noise"] == pytest.approx(sd_within * math.sqrt(dims * 499 / 500), rel=0.05)


def _scaled(sessions, factors):
    return [SessionShapes(s.speaker_id, s.session_id, s.shapes * factors) for s in sessions]


def test_standardized_dnr_is_invariant_to_per_dimension_scaling():
    rng = np.random.default_rng(2)
    sessions = [
        s
        for i in range(5)
        for s in _exact_speaker(
            rng, f"p{i}", 3, rng.uniform(0.5, 3), rng.uniform(0.5, 2, size=3), dims=4
        )
    ]
    factors = np.array([1.0, 10.0, 0.1, 3.0])
    base = compute_dnr(sessions, n_shape=4, standardize=True).speakers["dnr"].to_numpy()
    scaled = (
        compute_dnr(_scaled(sessions, factors), n_shape=4, standardize=True)
        .speakers["dnr"]
        .to_numpy()
    )
    np.testing.assert_allclose(scaled, base, rtol=1e-9)
    raw = compute_dnr(sessions, n_shape=4, standardize=False).speakers["dnr"].to_numpy()
    raw_scaled = (
        compute_dnr(_scaled(sessions, factors), n_shape=4, standardize=False)
        .speakers["dnr"]
        .to_numpy()
    )
    assert not np.allclose(raw_scaled, raw, rtol=0.01)
    # a global scaling never matters: both D and N are RMS distances in the same units
    raw_global = (
        compute_dnr(_scaled(sessions, 7.0), n_shape=4, standardize=False).speakers["dnr"].to_numpy()
    )
    np.testing.assert_allclose(raw_global, raw, rtol=1e-9)


def test_one_session_speaker_and_short_sessions_get_no_dnr_with_a_reason():
    rng = np.random.default_rng(3)
    sessions = [
        *_exact_speaker(rng, "two", 2, 1.0, [1.0, 1.0], dims=3),
        *_exact_speaker(rng, "one", 1, 0.0, [1.0], dims=3),
        SessionShapes("short", "x0", rng.normal(size=(5, 3))),
        SessionShapes("short", "x1", rng.normal(size=(50, 3))),
        SessionShapes("qc", "q0", np.zeros((0, 3)), reason="QC excluded: no face"),
    ]
    # NaN rows (invalid frames) do not count
    nan_rows = np.vstack([rng.normal(size=(40, 3)), np.full((100, 3), np.nan)])
    sessions.append(SessionShapes("two", "z_extra", nan_rows))
    res = compute_dnr(sessions, n_shape=3, standardize=True, min_valid_frames=30)
    sp = res.speakers.set_index("speaker_id")
    assert math.isnan(sp.loc["one", "dnr"]) and math.isnan(sp.loc["one", "drift"])
    assert "one usable session" in sp.loc["one", "reason"]
    assert sp.loc["one", "noise"] > 0 and sp.loc["one", "n_sessions"] == 1
    assert "one usable session" in sp.loc["short", "reason"]
    assert sp.loc["qc", "n_sessions"] == 0 and sp.loc["qc", "reason"] == "no usable session"
    assert sp.loc["two", "n_sessions"] == 3 and np.isfinite(sp.loc["two", "dnr"])
    ses = res.sessions.set_index("session_id")
    assert not ses.loc["x0", "used"] and "5 valid frames" in ses.loc["x0", "reason"]
    assert ses.loc["z_extra", "n_valid"] == 40
    assert ses.loc["q0", "reason"].startswith("QC excluded")
    assert res.summary["n_speakers_with_dnr"] == 1


# --- features and windows --------------------------------------------------------------------


def flame_like(
    n=60, n_expr=4, step=2, fps=30.0, invalid=(), jump_after=None, jump=10, seed=0, values=None
):
    """A FLAME-shaped table sampled every ``step`` source frames."""
    frame = np.arange(n) * step
    if jump_after is not None:
        frame[jump_after + 1 :] += jump
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_expr + 3)) if values is None else values
    df = pd.DataFrame(
        x, columns=[*(f"expr_{k:03d}" for k in range(n_expr)), "jaw_0", "jaw_1", "jaw_2"]
    )
    df.insert(0, "frame", frame)
    df.insert(1, "time_s", frame / fps)
    valid = np.ones(n, dtype=bool)
    valid[list(invalid)] = False
    df.insert(2, "valid", valid)
    df.loc[~valid, df.columns[3:]] = np.nan
    return df


def _video(session, speaker, reason=""):
    return {"session_id": session, "speaker_id": speaker, "reason": reason}


def test_windows_break_at_invalid_frames_and_frame_jumps():
    table = flame_like(60, invalid=[10], jump_after=39)
    store = store_from_tables([_video("s", "p")], [table], n_expr=4)
    assert store.rate == pytest.approx(15.0)
    assert store.n_videos == 1 and len(store.time_s) == 59
    # runs: rows 0-9, 11-39, 40-59 of the table
    starts = store.frame[store.new_run].tolist()
    assert starts == [0, 22, 90]
    win = make_windows(store, window_s=6 / 15, stride_s=1 / 15)  # 6 rows, stride 1
    assert win.length == 6
    assert len(win) == (10 - 5) + (29 - 5) + (20 - 5)
    rows = win.first_rows(store)[:, None] + np.arange(win.length)
    frames = store.frame[rows]
    assert (np.diff(frames, axis=1) == 2).all()  # never across the invalid row or the jump
    valid_frames = set(table.loc[table["valid"], "frame"])
    assert set(frames.ravel()) <= valid_frames
    x = batch(store, win)
    assert x.shape == (len(win), 6, 7) and x.dtype == np.float32
    np.testing.assert_array_equal(
        x[3], table.loc[table["frame"].isin(frames[3]), store.feature_names].to_numpy(np.float32)
    )


def test_random_crop_room_never_leaves_the_windows_nor_crosses_a_gap():
    table = flame_like(60, invalid=[10], jump_after=39)
    store = store_from_tables([_video("s", "p")], [table], n_expr=4)
    win = make_windows(store, window_s=6 / 15, stride_s=3 / 15)
    keep = np.arange(len(win)) != 4  # a hole in the chosen windows: no sliding across it
    chosen = win.subset(keep)
    room = shift_room(chosen)
    assert room.max() == 3 and (room >= 0).all()
    covered = set((chosen.first_rows(store)[:, None] + np.arange(6)).ravel().tolist())
    run_start = np.flatnonzero(store.new_run)
    for shift in range(4):
        moved = Windows(chosen.video, chosen.start + np.minimum(shift, room), chosen.length)
        rows = moved.first_rows(store)[:, None] + np.arange(6)
        assert set(rows.ravel().tolist()) <= covered  # only frames the windows already hold
        inner = np.isin(rows[:, 1:], run_start)
        assert not inner.any()  # and never a gap inside a window
    # windows that do not overlap their successor cannot move
    apart = Windows(np.array([0, 0]), np.array([0, 6]), 6)
    assert shift_room(apart).tolist() == [0, 0]
    other_video = Windows(np.array([0, 1]), np.array([0, 2]), 6)
    assert shift_room(other_video).tolist() == [0, 0]


def test_irregular_25_to_15_fps_sampling_is_not_a_gap():
    frames = sample_indices(250, 25.0, 15.0)
    n = len(frames)
    table = flame_like(n)
    table["frame"], table["time_s"] = frames, frames / 25.0
    store = store_from_tables([_video("s", "p")], [table], n_expr=4)
    assert store.rate == pytest.approx(15.0, rel=0.01)
    assert store.new_run.sum() == 1
    table2 = table.drop(index=50).reset_index(drop=True)  # one lost sample is a gap
    assert store_from_tables([_video("s", "p")], [table2], n_expr=4).new_run.sum() == 2


def test_velocity_features_stay_inside_runs():
    n = 40
    frame = np.arange(n) * 2
    frame[30:] += 20  # the jump of flame_like(jump_after=29, jump=20)
    values = np.repeat(frame[:, None].astype(float), 7, axis=1)  # every feature = frame index
    table = flame_like(n, values=values, invalid=[15], jump_after=29, jump=20)
    assert (table["frame"] == frame).all()
    store = store_from_tables([_video("s", "p")], [table], n_expr=4, velocity=True)
    assert store.feature_names[7] == "d_expr_000" and store.features.shape[1] == 14
    velocity = store.features[:, 7:]
    assert (velocity == 2).all()  # a difference across the invalid row or the jump is > 2
    # the first row of each run (rows 0, 16, 30) has no velocity and is dropped
    assert len(store.time_s) == n - 1 - 3
    assert store.frame[store.new_run].tolist() == [2, 34, 82]


def test_feature_sets_and_n_expr_clipping(caplog):
    table = flame_like(20, n_expr=4)
    jaw = store_from_tables([_video("s", "p")], [table], feature_set="jaw")
    assert jaw.feature_names == ["jaw_0", "jaw_1", "jaw_2"]
    with caplog.at_level(logging.WARNING):
        expr = store_from_tables([_video("s", "p")], [table], feature_set="expr", n_expr=50)
    assert expr.feature_names == ["expr_000", "expr_001", "expr_002", "expr_003"]
    assert "n_expr is 50" in caplog.text
    with pytest.raises(ValueError, match="unknown feature set"):
        store_from_tables([_video("s", "p")], [table], feature_set="pose")


# --- folds -----------------------------------------------------------------------------------


def cohort(sessions_per_speaker=(3, 3, 3, 2, 1), n=150, seed=0, excluded=()):
    """A store of speakers p0.. with the given numbers of sessions (ids s<k>_<speaker>)."""
    videos, tables = [], []
    for i, k_s in enumerate(sessions_per_speaker):
        for k in range(k_s):
            session = f"s{k}_p{i}"
            videos.append(_video(session, f"p{i}", "QC excluded: x" if session in excluded else ""))
            tables.append(flame_like(n, seed=seed + 10 * i + k, invalid=[70 + k]))
    return videos, tables


def _store(**kwargs):
    return store_from_tables(*cohort(**kwargs), n_expr=4)


def test_cross_session_round_robin_tests_every_session_once():
    store = _store(sessions_per_speaker=(3, 3, 3, 2, 1))
    win = make_windows(store, 1.0, 0.5)
    folds = build_folds(store, win, "cross_session", n_folds=3, min_windows=2)
    assert list(folds.columns) == [
        "fold",
        "speaker_id",
        "session_id",
        "split",
        "start_time_s",
        "stop_time_s",
        "n_windows",
        "reason",
    ]
    test = folds[folds["split"] == "test"]
    for speaker in ("p0", "p1", "p2"):
        tested = test.loc[test["speaker_id"] == speaker, "session_id"]
        assert sorted(tested) == [f"s{k}_{speaker}" for k in range(3)]  # each exactly once
    # two sessions, three folds: the modulo wraps, the first session is tested in folds 0 and 2
    assert test.loc[test["speaker_id"] == "p3", "session_id"].tolist() == [
        "s0_p3",
        "s1_p3",
        "s0_p3",
    ]
    one = folds[folds["speaker_id"] == "p4"]
    assert (one["split"] == "excluded").all() and len(one) == 3
    assert "1 usable session" in one["reason"].iloc[0]
    for k in range(3):
        f = folds[folds["fold"] == k]
        train = set(f.loc[f["split"] == "train", "session_id"])
        assert not train & set(f.loc[f["split"] == "test", "session_id"])
        assert len(f[f["split"] == "test"]) == 4  # one per speaker with >= 2 sessions
    assert (folds.loc[folds["split"] != "excluded", "n_windows"] >= 2).all()
    assert_no_leakage(folds, "cross_session", store, win)


def _windows_overlap(store, a, b):
    """Independent check: any window of ``b`` overlapping a window of ``a`` in one video."""
    a0, a1 = a.times(store)
    b0, b1 = b.times(store)
    same = a.video[:, None] == b.video[None, :]
    return bool((same & (a0[:, None] < b1[None, :]) & (b0[None, :] < a1[:, None])).any())


def test_folds_have_no_leakage_and_corrupted_folds_are_caught():
    store = _store(sessions_per_speaker=(2, 2, 3))
    win = make_windows(store, 1.0, 0.5)
    folds = build_folds(store, win, "within_session", window_s=1.0, train_fraction=0.6)
    assert set(folds["fold"]) == {0}
    train = fold_windows(folds, 0, "train", store, win)
    test = fold_windows(folds, 0, "test", store, win)
    assert len(train) and len(test) and not _windows_overlap(store, train, test)
    # the guard: every test window starts at least one window after every training window
    # of its session ends
    t_end = pd.Series(train.times(store)[1]).groupby(train.video).max()
    t_start = pd.Series(test.times(store)[0]).groupby(test.video).min()
    assert ((t_start - t_end).dropna() >= 1.0 - 1e-6).all()
    assert_no_leakage(folds, "within_session", store, win, min_gap_s=1.0)

    # corrupt: a test part starting inside the training part
    bad = folds.copy()
    i = bad.index[bad["split"] == "test"][0]
    bad.loc[i, "start_time_s"] -= 3.0
    bad_test = fold_windows(bad, 0, "test", store, win)
    assert _windows_overlap(store, train, bad_test)
    with pytest.raises(LeakageError):
        assert_no_leakage(bad, "within_session", store, win)
    # corrupt less: no overlap but inside the guard
    bad = folds.copy()
    bad.loc[i, "start_time_s"] -= 0.5
    assert_no_leakage(bad, "within_session", store, win)  # no overlap ...
    with pytest.raises(LeakageError):
        assert_no_leakage(bad, "within_session", store, win, min_gap_s=1.0)  # ... but no guard

    # cross_session: a speaker's test session also among their training sessions
    cross = build_folds(store, win, "cross_session", n_folds=2)
    assert_no_leakage(cross, "cross_session", store, win)
    row = cross[(cross["fold"] == 0) & (cross["split"] == "test")].iloc[[0]].copy()
    row["split"] = "train"
    leaked = pd.concat(
        [
            cross[
                ~(
                    (cross["fold"] == 0)
                    & (cross["session_id"] == row["session_id"].iloc[0])
                    & (cross["split"] == "train")
                )
            ],
            row,
        ]
    )
    with pytest.raises(LeakageError, match="also in training"):
        assert_no_leakage(leaked, "cross_session", store, win)


def test_interval_conflicts_are_checked_within_groups_only():
    # group 0: a = [0, 2), [5, 6); group 1: a = [10, 12)
    ga, a0, a1 = np.array([0, 0, 1]), np.array([0.0, 5.0, 10.0]), np.array([2.0, 6.0, 12.0])
    gb = np.array([0, 0, 0, 1, 1])
    b0 = np.array([2.0, 3.0, 1.0, 0.0, 11.0])
    b1 = np.array([3.0, 4.0, 1.5, 2.0, 11.5])
    # touching is fine, inside the gap is not, overlap is not; group 1's [0, 2) meets
    # group 0's [0, 2) only across groups (fine)
    assert _conflicts(ga, a0, a1, gb, b0, b1, 0.0).tolist() == [False, False, True, False, True]
    assert _conflicts(ga, a0, a1, gb, b0, b1, 1.0).tolist() == [True, False, True, False, True]
    assert _conflicts(ga, a0, a1, gb, b0, b1, 1.5).tolist() == [True, True, True, False, True]


def test_within_session_excludes_sessions_without_enough_windows():
    store = _store(sessions_per_speaker=(2, 1))
    win = make_windows(store, 4.0, 1.0)
    folds = build_folds(
        store, win, "within_session", window_s=4.0, train_fraction=0.8, min_windows=2
    )
    # 10 s sessions: test part after a 4 s guard is 2 s < one window
    assert (folds["split"] == "excluded").all()
    assert folds["reason"].str.contains("0 test windows").all()


def test_validation_split_comes_from_training_sessions_with_a_guard():
    store = _store(sessions_per_speaker=(3, 3))
    win = make_windows(store, 1.0, 0.5)
    folds = build_folds(store, win, "cross_session", n_folds=3)
    val = validation_split(
        folds, 1, window_s=1.0, stride_s=0.5, val_fraction=0.1, store=store, windows=win
    )
    assert set(val["fold"]) == {1}
    assert set(val["split"]) == {"train", "val", "test"}
    tr, va = val[val["split"] == "train"], val[val["split"] == "val"]
    assert set(va["session_id"]) == set(tr["session_id"])  # val only from training sessions
    assert not set(va["session_id"]) & set(val.loc[val["split"] == "test", "session_id"])
    assert (va["n_windows"] >= 1).all()
    merged = tr.merge(va, on=["speaker_id", "session_id"], suffixes=("_tr", "_va"))
    assert (merged["start_time_s_va"] - merged["stop_time_s_tr"] >= 1.0 - 1e-9).all()
    assert_no_leakage(val, "cross_session", store, win, min_gap_s=1.0)
    vw = fold_windows(val, 1, "val", store, win)
    tw = fold_windows(val, 1, "train", store, win)
    assert len(vw) and not _windows_overlap(store, tw, vw)


def test_qc_excluded_videos_are_listed_and_folds_are_deterministic():
    kwargs = {"sessions_per_speaker": (3, 3, 2), "excluded": ("s1_p2",)}
    a = _store(**kwargs)
    b = _store(**kwargs)
    wa, wb = make_windows(a, 1.0, 0.5), make_windows(b, 1.0, 0.5)
    np.testing.assert_array_equal(wa.start, wb.start)
    fa = build_folds(a, wa, "cross_session", n_folds=3)
    pd.testing.assert_frame_equal(fa, build_folds(b, wb, "cross_session", n_folds=3))
    p2 = fa[fa["speaker_id"] == "p2"]
    assert (p2["split"] == "excluded").all()
    assert p2.loc[p2["session_id"] == "s1_p2", "reason"].str.startswith("QC excluded").all()
    assert p2.loc[p2["session_id"] == "s0_p2", "reason"].str.contains("1 usable").all()


# --- normalisation ---------------------------------------------------------------------------


def test_normalisation_uses_training_windows_only(tmp_path):
    videos, tables = cohort(sessions_per_speaker=(3, 3))
    store = store_from_tables(videos, tables, n_expr=4)
    win = make_windows(store, 1.0, 0.5)
    folds = build_folds(store, win, "cross_session", n_folds=3)
    train = fold_windows(folds, 0, "train", store, win)
    test = fold_windows(folds, 0, "test", store, win)
    norm = Normalizer.fit(store, train)
    # changing the test sessions' data changes nothing
    test_sessions = set(folds.loc[(folds["fold"] == 0) & (folds["split"] == "test"), "session_id"])
    tables2 = [
        t.assign(**{c: t[c] * 100 + 5 for c in t.columns[3:]})
        if v["session_id"] in test_sessions
        else t
        for v, t in zip(videos, tables, strict=True)
    ]
    store2 = store_from_tables(videos, tables2, n_expr=4)
    assert Normalizer.fit(store2, train) == norm
    # statistics are those of the rows training windows cover, each row once
    rows = covered_rows(store, train)
    np.testing.assert_allclose(norm.mean, store.features[rows].mean(axis=0), rtol=1e-5)
    assert norm.n_rows == rows.sum() < len(train) * train.length
    x = batch(store, train, normalizer=norm)
    np.testing.assert_allclose(x.reshape(-1, x.shape[-1]).mean(axis=0), 0, atol=0.2)
    assert batch(store, test, normalizer=norm).shape == (len(test), 15, 7)
    norm.save(tmp_path / "norm.json")
    assert Normalizer.load(tmp_path / "norm.json") == norm


# --- experiment settings ---------------------------------------------------------------------


def test_experiments_set_to_false_are_left_out():
    identify = {"experiments": {"main": {}, "none": None, "off": False, "short": {"window_s": 4}}}
    assert experiment_names(identify) == ["main", "none", "short"]


def test_experiment_settings_merge_defaults_and_overrides():
    identify = {
        "protocol": "cross_session",
        "window_s": 8,
        "stride_s": 2,
        "n_folds": 3,
        "experiments": {
            "main": {},
            "short": {"window_s": 4},
            "none": None,
            "ws": {"protocol": "within_session", "train_fraction": 0.5},
        },
    }
    main = experiment_settings(identify, "main")
    assert main.name == "main" and main.window_s == 8 and main.features == "expr_jaw"
    assert experiment_settings(identify, "short").window_s == 4
    assert experiment_settings(identify, "short").stride_s == 2
    assert experiment_settings(identify, "none") == experiment_settings(
        {**identify, "experiments": {"none": {}}}, "none"
    )
    ws = experiment_settings(identify, "ws")
    assert ws.protocol == "within_session" and ws.guard_s == 8.0
    assert ws.to_dict()["train_fraction"] == 0.5
    with pytest.raises(ExperimentError, match=r"experiments\.bad.*windw_s"):
        experiment_settings({"experiments": {"bad": {"windw_s": 4}}}, "bad")
    with pytest.raises(ExperimentError, match="protocol"):
        experiment_settings({"experiments": {"x": {"protocol": "leave_one_out"}}}, "x")
    with pytest.raises(ExperimentError, match="no experiment"):
        experiment_settings(identify, "missing")


def test_spearman_check_reports_the_ratio_and_its_parts():
    from facedyn.dynamics.dnr import spearman_check

    knob = np.linspace(0.1, 2.0, 8)
    speakers = pd.DataFrame(
        {
            "speaker_id": [f"s{i}" for i in range(8)],
            "drift": knob,
            "noise": knob[::-1],
            "dnr": knob / knob[::-1],
        }
    )
    truth = pd.DataFrame({"speaker_id": [f"s{i}" for i in range(8)], "instability": knob})
    out = spearman_check(speakers, truth)
    assert out["n_speakers"] == 8
    assert out["spearman_rho"] == pytest.approx(1.0)
    assert out["drift_spearman_rho"] == pytest.approx(1.0)
    assert out["noise_spearman_rho"] == pytest.approx(-1.0)
