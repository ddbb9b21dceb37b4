"""Drift-to-noise ratio, dynamics features, windows and cross-validation folds.

- :mod:`facedyn.dynamics.dnr`: the drift-to-noise ratio of the estimated face shape.
- :mod:`facedyn.dynamics.features`: expression/jaw features of valid frames, runs between
  gaps and the cohort's :class:`FeatureStore`.
- :mod:`facedyn.dynamics.windows`: fixed-length windows as (video, start row) arrays and
  the training-only :class:`Normalizer`.
- :mod:`facedyn.dynamics.folds`: protocol folds, their expansion into windows, the
  validation split and the leakage check.
"""

from facedyn.dynamics.dnr import DNRResult, SessionShapes, compute_dnr
from facedyn.dynamics.features import FeatureStore, load_store, store_from_tables
from facedyn.dynamics.folds import (
    LeakageError,
    assert_no_leakage,
    build_folds,
    fold_windows,
    validation_split,
)
from facedyn.dynamics.windows import Normalizer, Windows, batch, make_windows

__all__ = [
    "DNRResult",
    "FeatureStore",
    "LeakageError",
    "Normalizer",
    "SessionShapes",
    "Windows",
    "assert_no_leakage",
    "batch",
    "build_folds",
    "compute_dnr",
    "fold_windows",
    "load_store",
    "make_windows",
    "store_from_tables",
    "validation_split",
]
