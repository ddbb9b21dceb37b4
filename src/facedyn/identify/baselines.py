"""Baselines and controls that score test windows against enrolled speakers.

Each produces an ``(N, S)`` score matrix (higher = more likely that speaker) with its column
order in ``classes_`` (speaker ids as sorted strings), so :mod:`facedyn.identify.metrics`
measures them exactly like the learned encoders:

- :class:`StatsLogReg`: hand-crafted summary statistics of every window
  (:func:`window_statistics`: level, spread, quantiles, velocity, autocorrelation,
  zero crossings, spectral band shares) into a standardised multinomial logistic
  regression. What a learned encoder has to beat.
- :class:`ShapeOnly`: the appearance-leak control. The same logistic regression on the
  window mean of the FLAME *shape* coefficients, the identity parameters the dynamics
  features deliberately discard. Logistic regression rather than a nearest centroid, so the
  control is as strong as the statistics baseline and differs from it only in its input; a
  high score says the fitted shape still carries identity (as it should) and bounds what a
  leak of shape into the expression coefficients could explain.
- :func:`chance_scores`: random scores, a real row of the results table at about 1/S.

Both classifiers are deterministic (lbfgs, no random initialisation); the optional
per-speaker cap on training windows (``max_per_speaker``) subsamples with a fixed seed. At
CANDOR scale (1,429 speakers, ~10^6 training windows) lbfgs holds a few (windows x speakers)
float64 arrays, so a cap of a few hundred windows per speaker keeps memory in the GBs;
overlapping windows of one session are strongly correlated, so little is lost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.special
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from facedyn.dynamics.features import FeatureStore
from facedyn.dynamics.windows import Normalizer, Windows, batch

#: Frequency bands (Hz) of the spectral statistics; the last one ends at Nyquist at 15 fps.
DEFAULT_BANDS: tuple[tuple[float, float], ...] = ((0.0, 1.0), (1.0, 3.0), (3.0, 7.5))
#: Lag of the second autocorrelation statistic, in seconds.
DEFAULT_LAG_S = 0.25
_BASE_STATS = ("mean", "std", "p10", "p50", "p90", "velocity", "ac1", "ac_lag", "zcr")


# --- window statistics -----------------------------------------------------------------------


def statistic_names(
    feature_names: Sequence[str], bands: Sequence[tuple[float, float]] = DEFAULT_BANDS
) -> list[str]:
    """Column names of :func:`window_statistics`: statistic-major, ``<stat>:<feature>``."""
    stats = [*_BASE_STATS, *(f"band_{lo:g}_{hi:g}hz" for lo, hi in bands)]
    return [f"{s}:{f}" for s in stats for f in feature_names]


def window_statistics(
    x: np.ndarray,
    rate: float,
    lag_s: float = DEFAULT_LAG_S,
    bands: Sequence[tuple[float, float]] = DEFAULT_BANDS,
) -> np.ndarray:
    """Per-feature summary statistics of windows ``x`` ``(B, T, F)`` sampled at ``rate`` Hz.

    Returns ``(B, K)`` float32 with ``K = (9 + len(bands)) * F``, statistic-major (names:
    :func:`statistic_names`): mean; standard deviation; 10th/50th/90th percentiles; mean
    absolute first difference per second (velocity); autocorrelation at lag 1 and at lag
    ``round(lag_s * rate)`` rows (how smooth / how slow the movement is); zero-crossing rate
    of the de-meaned signal per step; and the share of the de-meaned signal's power (rfft,
    DC excluded) in each frequency band, ``[lo, hi)`` with the top band including Nyquist.
    Shares rather than absolute powers: amplitude is already in ``std``, shares describe
    rhythm independently of it. Constant features give 0 for every ratio (no NaN).
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"windows must be (B, T, F); got {x.shape}")
    n_b, n_t, _ = x.shape
    if n_t < 2:
        raise ValueError("windows need at least two frames for dynamics statistics")
    # float32 temporaries, float64 sums; a constant feature has an exact mean, so xc == 0
    mean = x.mean(axis=1, dtype=np.float64)
    xc = x - mean[:, None, :].astype(np.float32)
    power = np.einsum("btf,btf->bf", xc, xc, dtype=np.float64)
    std = np.sqrt(power / n_t)
    varying = std > 1e-6 * (1.0 + np.abs(mean))  # above float32 rounding of the mean
    safe = np.where(varying, power, 1.0)

    def ratio(num: np.ndarray) -> np.ndarray:
        return np.where(varying, num / safe, 0.0)

    lag = min(max(1, round(lag_s * rate)), n_t - 1)
    q10, q50, q90 = _quantiles(x, (0.1, 0.5, 0.9))
    velocity = np.abs(np.diff(x, axis=1)).mean(axis=1, dtype=np.float64) * rate
    ac1 = ratio(np.einsum("btf,btf->bf", xc[:, 1:], xc[:, :-1], dtype=np.float64))
    ac_lag = ratio(np.einsum("btf,btf->bf", xc[:, lag:], xc[:, :-lag], dtype=np.float64))
    zcr = np.where(varying, ((xc[:, 1:] * xc[:, :-1]) < 0).mean(axis=1), 0.0)
    spec = np.abs(np.fft.rfft(xc, axis=1)) ** 2
    freq = np.fft.rfftfreq(n_t, d=1.0 / rate)
    total = spec[:, 1:].sum(axis=1, dtype=np.float64)
    nyquist = rate / 2.0
    shares = []
    for lo, hi in bands:
        sel = (freq > 0) & (freq >= lo) & ((freq < hi) | ((hi >= nyquist) & (freq <= hi)))
        band = spec[:, sel].sum(axis=1, dtype=np.float64)
        shares.append(np.where(varying & (total > 0), band / np.where(total > 0, total, 1.0), 0.0))
    out = np.stack([mean, std, q10, q50, q90, velocity, ac1, ac_lag, zcr, *shares], axis=1)
    return np.nan_to_num(out.reshape(n_b, -1), nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def _quantiles(x: np.ndarray, qs: Sequence[float]) -> list[np.ndarray]:
    """Quantiles over axis 1 (``np.quantile``'s linear method) from one ``np.partition``
    on the order statistics they need: about twice as fast as ``np.quantile``."""
    n_t = x.shape[1]
    pos = [q * (n_t - 1) for q in qs]
    lo = [math.floor(p) for p in pos]
    kth = sorted({k for low in lo for k in (low, min(low + 1, n_t - 1))})
    part = np.partition(x, kth, axis=1)
    out = []
    for p, low in zip(pos, lo, strict=True):
        a = part[:, low].astype(np.float64)
        b = part[:, min(low + 1, n_t - 1)].astype(np.float64)
        out.append(a + (p - low) * (b - a))
    return out


def statistics_of_windows(
    store: FeatureStore,
    windows: Windows,
    normalizer: Normalizer | None = None,
    batch_size: int = 4096,
    lag_s: float = DEFAULT_LAG_S,
    bands: Sequence[tuple[float, float]] = DEFAULT_BANDS,
) -> np.ndarray:
    """:func:`window_statistics` of all ``windows`` of a store, gathered ``batch_size`` at a
    time so the ``(B, T, F)`` arrays stay small: ``(N, K)`` float32."""
    k = (len(_BASE_STATS) + len(bands)) * len(store.feature_names)
    out = np.empty((len(windows), k), dtype=np.float32)
    for a in range(0, len(windows), batch_size):
        idx = np.arange(a, min(len(windows), a + batch_size))
        out[idx] = window_statistics(
            batch(store, windows, idx, normalizer), store.rate, lag_s, bands
        )
    return out


def window_means(store: FeatureStore, windows: Windows, batch_size: int = 8192) -> np.ndarray:
    """Mean over each window's rows of every feature of a store: ``(N, F)`` float32 (the
    input of :class:`ShapeOnly` on a ``shape`` store)."""
    out = np.empty((len(windows), store.features.shape[1]), dtype=np.float32)
    for a in range(0, len(windows), batch_size):
        idx = np.arange(a, min(len(windows), a + batch_size))
        out[idx] = batch(store, windows, idx).mean(axis=1, dtype=np.float64)
    return out


def align_windows(
    source: FeatureStore, windows: Windows, target: FeatureStore
) -> tuple[Windows, np.ndarray]:
    """The windows of ``source`` as windows of ``target``, covering the same source frames.

    Two stores of one cohort built with different feature sets (``expr_jaw`` and ``shape``,
    with or without velocity) can keep different rows, so a (video, start row) window of
    one is not a window of the other. A window is matched by its first and last frame in
    the same video with no run break in between (so exactly the same frames). Returns the
    matched windows and the boolean mask of ``windows`` that were found; with the same
    valid frames in both (the usual case: FLAME fits all parameters of a frame at once)
    every window is found. Both stores must list the same videos in the same order.
    """
    if list(source.session_id) != list(target.session_id) or list(source.speaker_id) != list(
        target.speaker_id
    ):
        raise ValueError("the two stores must hold the same videos in the same order")
    length = windows.length
    n_dst = len(target.frame)
    if not len(windows) or n_dst == 0:
        return Windows(windows.video[:0], windows.start[:0], length), np.zeros(
            len(windows), dtype=bool
        )
    first = windows.first_rows(source)
    f0, f1 = source.frame[first], source.frame[first + length - 1]
    span = int(max(target.frame.max(), source.frame.max())) + 1
    dst_video = np.repeat(np.arange(target.n_videos, dtype=np.int64), np.diff(target.offsets))
    dst_key = dst_video * span + target.frame  # sorted: videos in order, frames increasing
    v = windows.video.astype(np.int64)
    pos = np.searchsorted(dst_key, v * span + f0)
    last = pos + length - 1
    ok = last < n_dst
    pos_c, last_c = np.minimum(pos, n_dst - 1), np.minimum(last, n_dst - 1)
    runs = np.cumsum(target.new_run)
    ok &= (dst_key[pos_c] == v * span + f0) & (dst_key[last_c] == v * span + f1)
    ok &= runs[last_c] == runs[pos_c]  # no run starts after the first row
    start = pos[ok] - target.offsets[v[ok]]
    return Windows(windows.video[ok], start.astype(np.int64), length), ok


# --- classifiers -----------------------------------------------------------------------------


def cap_per_class(labels: np.ndarray, max_per_class: int | None, seed: int = 0) -> np.ndarray:
    """Indices (sorted) of at most ``max_per_class`` rows per label, drawn without
    replacement with a fixed seed; all rows when ``max_per_class`` is None."""
    labels = np.asarray(labels)
    if max_per_class is None:
        return np.arange(len(labels))
    group = np.unique(labels, return_inverse=True)[1]
    order = np.lexsort((np.random.default_rng(seed).random(len(labels)), group))
    g = group[order]
    starts = np.searchsorted(g, g, side="left")
    within = np.arange(len(g)) - starts
    return np.sort(order[within < max_per_class])


class _LogRegScorer:
    """StandardScaler + multinomial L2 logistic regression (lbfgs) on a feature matrix,
    scoring with log-probabilities (log-softmax of the decision values, always finite)."""

    def __init__(
        self,
        C: float = 1.0,
        class_weight: str | None = None,
        max_iter: int = 2000,
        tol: float = 1e-4,
        max_per_speaker: int | None = None,
        seed: int = 0,
    ) -> None:
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.tol = tol
        self.max_per_speaker = max_per_speaker
        self.seed = seed
        self.pipeline_: Pipeline | None = None
        self.classes_: list[str] = []

    def _fit_matrix(self, z: np.ndarray, labels: Sequence[str] | np.ndarray) -> None:
        y = np.asarray(labels).astype(str)
        if len(z) != len(y):
            raise ValueError(f"{len(z)} training rows but {len(y)} labels")
        if len(np.unique(y)) < 2:
            raise ValueError("a classifier needs training windows of at least two speakers")
        keep = cap_per_class(y, self.max_per_speaker, self.seed)
        self.pipeline_ = make_pipeline(
            StandardScaler(),
            LogisticRegression(
                C=self.C,
                class_weight=self.class_weight,
                solver="lbfgs",
                max_iter=self.max_iter,
                tol=self.tol,
            ),
        )
        self.pipeline_.fit(np.asarray(z)[keep], y[keep])
        self.classes_ = [str(c) for c in self.pipeline_.classes_]

    def _scores_matrix(self, z: np.ndarray) -> np.ndarray:
        if self.pipeline_ is None:
            raise RuntimeError("fit the model first")
        d = self.pipeline_.decision_function(np.asarray(z))
        if d.ndim == 1:  # two speakers: sklearn fits one binary model
            logp = np.stack([scipy.special.log_expit(-d), scipy.special.log_expit(d)], axis=1)
        else:
            logp = scipy.special.log_softmax(d, axis=1)
        return logp.astype(np.float32)

    @property
    def n_iter(self) -> int:
        """lbfgs iterations used (``max_iter``: it did not converge)."""
        return -1 if self.pipeline_ is None else int(np.max(self.pipeline_[-1].n_iter_))


class StatsLogReg(_LogRegScorer):
    """Window summary statistics (:func:`window_statistics`) -> StandardScaler ->
    multinomial logistic regression. ``scores`` are log-probabilities ``(N, S)`` with
    columns ``classes_``. Fit and score on raw or normalised windows, the same for both.
    ``fit_statistics`` / ``scores_statistics`` take precomputed statistics (e.g. from
    :func:`statistics_of_windows`), so large cohorts never hold all windows at once."""

    def __init__(
        self,
        rate: float,
        C: float = 1.0,
        class_weight: str | None = None,
        max_iter: int = 2000,
        tol: float = 1e-4,
        max_per_speaker: int | None = None,
        seed: int = 0,
        lag_s: float = DEFAULT_LAG_S,
        bands: Sequence[tuple[float, float]] = DEFAULT_BANDS,
    ) -> None:
        super().__init__(C, class_weight, max_iter, tol, max_per_speaker, seed)
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = float(rate)
        self.lag_s = lag_s
        self.bands = tuple(bands)

    def statistics(self, x: np.ndarray) -> np.ndarray:
        return window_statistics(x, self.rate, self.lag_s, self.bands)

    def fit(self, x: np.ndarray, labels: Sequence[str] | np.ndarray) -> StatsLogReg:
        """Fit on training windows ``(B, T, F)`` and their speaker ids."""
        return self.fit_statistics(self.statistics(x), labels)

    def fit_statistics(self, z: np.ndarray, labels: Sequence[str] | np.ndarray) -> StatsLogReg:
        self._fit_matrix(z, labels)
        return self

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Log-probabilities ``(N, S)`` of test windows ``(N, T, F)``."""
        return self._scores_matrix(self.statistics(x))

    def scores_statistics(self, z: np.ndarray) -> np.ndarray:
        return self._scores_matrix(z)


class ShapeOnly(_LogRegScorer):
    """Appearance-leak control: the window mean of the shape coefficients -> StandardScaler
    -> multinomial logistic regression (see the module docstring for why). Takes windows of
    a ``shape`` store ``(B, T, n_shape)`` (the same windows as the dynamics models: see
    :func:`align_windows`) or their means ``(B, n_shape)`` (:func:`window_means`)."""

    @staticmethod
    def _means(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 3:
            return x.mean(axis=1, dtype=np.float64)
        if x.ndim == 2:
            return x
        raise ValueError(f"shape windows must be (B, T, n_shape) or (B, n_shape); got {x.shape}")

    def fit(self, x: np.ndarray, labels: Sequence[str] | np.ndarray) -> ShapeOnly:
        self._fit_matrix(self._means(x), labels)
        return self

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Log-probabilities ``(N, S)`` with columns ``classes_``."""
        return self._scores_matrix(self._means(x))


def chance_scores(n: int, classes: Sequence[str], seed: int = 0) -> np.ndarray:
    """Independent standard-normal scores ``(n, S)`` float32: a chance row (top-1 ~ 1/S,
    EER ~ 0.5) measured by the same code as every model."""
    return np.random.default_rng(seed).standard_normal((n, len(classes)), dtype=np.float32)
