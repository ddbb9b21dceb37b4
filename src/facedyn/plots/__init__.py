"""Figures: one style (:mod:`facedyn.plots.style`), the paper's figures
(:mod:`facedyn.plots.figures`) and the landmark-frame figure (:mod:`facedyn.plots.frames`),
each built from already-loaded results and written with :func:`save_figure`
(``<stem>.png`` + ``<stem>.pdf``, atomically)."""

from facedyn.plots.figures import (
    accuracy_bars,
    accuracy_vs_setting,
    cmc_and_roc,
    dnr_vs_accuracy,
    drift_vs_noise,
    embedding_map,
    fit_quality,
)
from facedyn.plots.style import apply_style, figure_style, save_figure

__all__ = [
    "accuracy_bars",
    "accuracy_vs_setting",
    "apply_style",
    "cmc_and_roc",
    "dnr_vs_accuracy",
    "drift_vs_noise",
    "embedding_map",
    "figure_style",
    "fit_quality",
    "save_figure",
]
