"""The baselines an experiment may compare with its encoder on the same folds and metrics,
in one registry (:data:`BASELINES`); every other list of baselines derives from it.

A baseline is either an encoder, trained per fold like the experiment's own (rule
``train_baseline_encoder``; the architecture is :mod:`facedyn.identify.encoders`), or a
scorer: a function of the fold's :class:`BaselineData` that returns the scores of the test
windows against every enrolled speaker (higher = more likely) and the speakers, in the
columns' order. Scorers run in the registry's order, after the encoders. A new baseline is
an entry in :data:`BASELINES` (and its name in the config schema's ``baselines`` enum, which
a test holds to the registry).

Importing this module is cheap (numpy only): the workflow reads the names while the DAG is
built; the scorers import what they need when they run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from facedyn.dynamics.features import FeatureStore
    from facedyn.dynamics.windows import Windows


@dataclass(frozen=True)
class BaselineData:
    """What a baseline scorer sees of one fold: the experiment's feature ``store``, the
    enrolment (training) and test windows, the enrolment windows' speakers, which of them it
    may fit on (``keep``, ``identify.max_per_speaker``), the experiment's ``videos`` (their
    FLAME tables' metadata hold the appearance descriptors), its store of shape coefficients
    (built when a scorer calls ``shape_store``), the logistic regressions' ``stats_c``, the
    fold and the run's seed (:func:`facedyn.identify.stage.baseline_data`)."""

    store: FeatureStore
    train: Windows
    test: Windows
    train_speakers: np.ndarray
    keep: np.ndarray
    videos: Sequence[Mapping[str, Any]]
    shape_store: Callable[[], FeatureStore]
    stats_c: float
    fold: int
    seed: int


def _score_stats_lr(d: BaselineData) -> tuple[np.ndarray, Sequence[str]]:
    from facedyn.identify.baselines import StatsLogReg, statistics_of_windows

    store = d.store
    clf = StatsLogReg(store.rate, C=d.stats_c, seed=d.seed)
    clf.fit_statistics(
        statistics_of_windows(store, d.train.subset(d.keep)), d.train_speakers[d.keep]
    )
    return clf.scores_statistics(statistics_of_windows(store, d.test)), clf.classes_


def _score_shape_only(d: BaselineData) -> tuple[np.ndarray, Sequence[str]]:
    from facedyn.identify.baselines import ShapeOnly, align_windows, window_means

    store, shape_store = d.store, d.shape_store()
    tr, tr_ok = align_windows(store, d.train.subset(d.keep), shape_store)
    te, te_ok = align_windows(store, d.test, shape_store)
    if not te_ok.all():
        raise ValueError("shape_only: some test windows have no shape rows")
    clf = ShapeOnly(C=d.stats_c, seed=d.seed)
    clf.fit(window_means(shape_store, tr), d.train_speakers[d.keep][tr_ok])
    return clf.scores(window_means(shape_store, te)), clf.classes_


def _window_descriptors(d: BaselineData, windows: Windows) -> tuple[np.ndarray, np.ndarray]:
    """Each window's session appearance descriptor (:mod:`facedyn.face.descriptor`, from
    its FLAME table's metadata) and whether it has one."""
    from facedyn.face.descriptor import DESCRIPTOR_DIM, descriptor_of
    from facedyn.tables import read_metadata

    by_video = {
        (v["session_id"], v["speaker_id"]): descriptor_of(read_metadata(v["path"]))
        for v in d.videos
        if v["path"] and not v["reason"]
    }
    store = d.store
    keys = list(zip(store.session_id, store.speaker_id, strict=True))
    per_video = [by_video.get(k) for k in keys]
    out = np.zeros((len(windows), DESCRIPTOR_DIM))
    ok = np.zeros(len(windows), dtype=bool)
    for i, v in enumerate(windows.video):
        if per_video[v] is not None:
            out[i], ok[i] = per_video[v], True
    return out, ok


def _score_appearance_only(d: BaselineData) -> tuple[np.ndarray, Sequence[str]]:
    """What a face recogniser scores: the session's face recognition embedding and the
    window's mean fitted shape into the shape-only logistic regression. Test windows of a
    session without a descriptor get uniform scores."""
    from facedyn.identify.baselines import ShapeOnly, align_windows, window_means

    store, shape_store = d.store, d.shape_store()
    train = d.train.subset(d.keep)
    tr, tr_ok = align_windows(store, train, shape_store)
    te, te_ok = align_windows(store, d.test, shape_store)
    tr_desc, tr_has = _window_descriptors(d, train)
    te_desc, te_has = _window_descriptors(d, d.test)
    fit = tr_has[tr_ok]
    if not fit.any():
        raise ValueError("appearance_only: no training window has an appearance descriptor")
    x_train = np.hstack([tr_desc[tr_ok], window_means(shape_store, tr)])[fit]
    clf = ShapeOnly(C=d.stats_c, seed=d.seed)
    clf.fit(x_train, d.train_speakers[d.keep][tr_ok][fit])
    # Every enrolled speaker is a column; one whose sessions have no descriptor was never
    # fitted and scores below every fitted speaker (log-probability of 1e-12).
    classes = sorted(set(d.train_speakers.tolist()))
    column = {c: k for k, c in enumerate(classes)}
    scores = np.zeros((len(d.test), len(classes)), dtype=np.float64)
    usable = np.flatnonzero(te_ok)[te_has[te_ok]]
    if len(usable):
        means = window_means(shape_store, te)
        x_test = np.hstack([te_desc[te_ok], means])[te_has[te_ok]]
        fitted = np.full((len(usable), len(classes)), np.log(1e-12))
        fitted[:, [column[c] for c in clf.classes_]] = clf.scores(x_test)
        scores[usable] = fitted
    return scores, classes


def _score_chance(d: BaselineData) -> tuple[np.ndarray, Sequence[str]]:
    from facedyn.identify.baselines import chance_scores

    classes = sorted(set(d.train_speakers.tolist()))
    return chance_scores(len(d.test), classes, d.seed + d.fold), classes


#: A scorer: the fold's test windows' scores against every enrolled speaker, and the speakers.
Scorer = Callable[[BaselineData], tuple[np.ndarray, Sequence[str]]]


@dataclass(frozen=True)
class Baseline:
    """One baseline: ``scorer`` None for an encoder baseline (trained per fold, scored like
    the experiment's encoder); ``dynamics`` False for a model that sees appearance or
    nothing, whose confusions the appearance-leak statistic does not judge."""

    scorer: Scorer | None = None
    dynamics: bool = True


#: Every baseline by name, in the order of the config schema's enum.
BASELINES: dict[str, Baseline] = {
    "lstm": Baseline(),
    "tcn": Baseline(),
    "stats_lr": Baseline(_score_stats_lr),
    "shape_only": Baseline(_score_shape_only, dynamics=False),
    "appearance_only": Baseline(_score_appearance_only, dynamics=False),
    "chance": Baseline(_score_chance, dynamics=False),
}
#: The baselines that are encoders, trained per fold like the experiment's own.
ENCODER_BASELINES: tuple[str, ...] = tuple(n for n, b in BASELINES.items() if b.scorer is None)
#: The baselines that are not encoders: name -> scorer, in scoring order.
BASELINE_SCORERS: dict[str, Scorer] = {
    n: b.scorer for n, b in BASELINES.items() if b.scorer is not None
}
#: Models whose confusions the leak statistic does not judge: they see appearance, or nothing.
NOT_DYNAMICS: tuple[str, ...] = tuple(n for n, b in BASELINES.items() if not b.dynamics)
