"""The appearance-leak audit as a figure: every model's top-1 in every cell of the 2x2.

One panel per cohort (main, null dynamics, swap, null + swap), one pair of bars per model:
fitted features (filled, 95 % CI) and the truth (hatched, 95 % CI), chance as a dashed line.
Reads :func:`facedyn.audit.audit_report`'s result; draws nothing else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from facedyn.audit import audit_report
from facedyn.plots.style import (
    DOUBLE_COL,
    figure_style,
    model_color,
    model_label,
    new_figure,
    ordered_models,
    save_figure,
)

#: Panel titles of the cohorts the audit knows.
COHORT_TITLES = {
    "main": "main (own dynamics, own faces)",
    "null_dynamics": "null (shared dynamics, own faces)",
    "swap": "swap (own dynamics, new faces)",
    "null_swap": "null + swap (neither)",
}


def _bar(ax: Any, x: float, width: float, entry: Mapping[str, Any] | None, **style: Any) -> None:
    if entry is None:
        return
    top1 = 100 * float(entry["top1"])
    lo, hi = entry["ci"]
    yerr = None if lo is None or hi is None else [[top1 - 100 * lo], [100 * hi - top1]]
    ax.bar(x, top1, width, yerr=yerr, error_kw={"elinewidth": 0.7, "ecolor": "black"}, **style)


def audit_figure(report: Mapping[str, Any], subtitle: str = "") -> Figure:
    """Top-1 with 95 % CI of every model on every cohort of the audit, fitted and truth."""
    cohorts = list(report["cells"])
    by_model = {row["model"]: row for row in report["rows"]}
    models = ordered_models(by_model)
    w = 0.38
    with figure_style():
        fig = new_figure(DOUBLE_COL, 2.8)
        axes = fig.subplots(1, len(cohorts), sharey=True, squeeze=False)[0]
        for ax, cohort in zip(axes, cohorts, strict=True):
            chance = None
            for i, model in enumerate(models):
                c = model_color(model)
                fitted = by_model[model].get(f"{cohort}:fitted")
                truth = by_model[model].get(f"{cohort}:truth")
                _bar(ax, i - w / 2, w, fitted, color=c, edgecolor=c)
                _bar(
                    ax,
                    i + w / 2,
                    w,
                    truth,
                    facecolor="white",
                    edgecolor=c,
                    hatch="//////",
                    linewidth=0.8,
                )
                for e in (fitted, truth):
                    if e is not None and e["chance"] is not None:
                        chance = float(e["chance"])
            if chance is not None:
                ax.axhline(100 * chance, color="black", ls="--", lw=0.9, zorder=0)
            ax.set_xticks(np.arange(len(models)), [model_label(m) for m in models], rotation=60)
            ax.set_title(COHORT_TITLES.get(cohort, cohort), fontsize=7.5)
            ax.set_ylim(0, 100)
        axes[0].set_ylabel("top-1 (%)")
        handles = [
            Patch(facecolor="0.35", edgecolor="0.35", label="fitted (95 % CI)"),
            Patch(facecolor="white", edgecolor="0.35", hatch="//////", label="truth"),
            Patch(facecolor="white", edgecolor="black", ls="--", label="chance"),
        ]
        verdict = "audit passed" if report["passed"] else "audit failed"
        fig.suptitle(f"Appearance-leak audit: {verdict}" + (f" · {subtitle}" if subtitle else ""))
        fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
    return fig


def run_audit_figure(
    metrics_paths: Sequence[str],
    cohorts: Mapping[str, Mapping[str, Any]],
    main: str | None,
    ceiling: str | None,
    out_dir: str | os.PathLike[str],
    run_name: str = "",
) -> list[Path]:
    """``<out_dir>/audit.{png,pdf}`` from the main, ceiling and audit experiments' metrics."""
    metrics = [json.loads(Path(p).read_text()) for p in metrics_paths]
    report = audit_report(metrics, cohorts, main, ceiling)
    return save_figure(audit_figure(report, run_name), Path(out_dir) / "audit")


__all__ = ["COHORT_TITLES", "audit_figure", "run_audit_figure"]
