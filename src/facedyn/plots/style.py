"""One matplotlib style for every facedyn figure.

- Colour-blind-safe Okabe-Ito palette; every model keeps one colour and one place in the
  order (:data:`MODEL_ORDER`, :data:`MODEL_COLORS`) in every figure.
- Sized for a single journal column (:data:`SINGLE_COL`, 3.4 in) or the full width
  (:data:`DOUBLE_COL`, 7 in), 8-9 pt text, no top/right spines.
- Figures are built as plain :class:`matplotlib.figure.Figure` objects on an Agg canvas
  (:func:`new_figure`): no pyplot state, no GUI backend, safe in Snakemake jobs.
- :func:`save_figure` writes ``<stem>.png`` and ``<stem>.pdf`` atomically and closes the figure.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from facedyn.atomic import atomic_write

# Okabe & Ito (2008), "Color Universal Design".
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
GREY = "#8C8C8C"

MODEL_ORDER: tuple[str, ...] = (
    "conformer",
    "lstm",
    "tcn",
    "stats_lr",
    "shape_only",
    "appearance_only",
    "chance",
)
MODEL_COLORS: dict[str, str] = {
    "conformer": OKABE_ITO["blue"],
    "lstm": OKABE_ITO["orange"],
    "tcn": OKABE_ITO["bluish_green"],
    "stats_lr": OKABE_ITO["reddish_purple"],
    "shape_only": OKABE_ITO["vermillion"],
    "appearance_only": OKABE_ITO["sky_blue"],
    "chance": GREY,
}
MODEL_LABELS: dict[str, str] = {
    "conformer": "Conformer",
    "lstm": "LSTM",
    "tcn": "TCN",
    "stats_lr": "Stats + LR",
    "shape_only": "Shape only",
    "appearance_only": "Appearance only",
    "chance": "Chance",
}
MODEL_MARKERS: dict[str, str] = {
    "conformer": "o",
    "lstm": "s",
    "tcn": "^",
    "stats_lr": "D",
    "shape_only": "v",
    "appearance_only": "P",
    "chance": "x",
}
# Colours for categories without a fixed colour (speakers, ...), black and yellow last.
CYCLE: tuple[str, ...] = (
    OKABE_ITO["blue"],
    OKABE_ITO["orange"],
    OKABE_ITO["bluish_green"],
    OKABE_ITO["vermillion"],
    OKABE_ITO["reddish_purple"],
    OKABE_ITO["sky_blue"],
    OKABE_ITO["black"],
    OKABE_ITO["yellow"],
)

SINGLE_COL = 3.4
"""Single-column figure width (in)."""
DOUBLE_COL = 7.0
"""Double-column (full-width) figure width (in)."""
PNG_DPI = 200

RC: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7.5,
    "legend.title_fontsize": 8,
    "figure.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.7,
    "axes.grid": False,
    "axes.prop_cycle": mpl.cycler(color=list(CYCLE)),
    "axes.titlelocation": "left",
    "grid.linewidth": 0.4,
    "grid.alpha": 0.5,
    "lines.linewidth": 1.3,
    "lines.markersize": 4,
    "patch.linewidth": 0.6,
    "xtick.major.width": 0.7,
    "ytick.major.width": 0.7,
    "xtick.major.size": 3,
    "ytick.major.size": 3,
    "legend.frameon": False,
    "legend.handlelength": 1.6,
    "legend.borderaxespad": 0.3,
    "errorbar.capsize": 2,
    "figure.dpi": 100,
    "savefig.dpi": PNG_DPI,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.03,
    "pdf.fonttype": 42,  # TrueType in PDFs: editable text
    "ps.fonttype": 42,
    "svg.fonttype": "none",
}


def apply_style() -> None:
    """Apply the facedyn style globally (``matplotlib.rcParams``)."""
    mpl.rcParams.update(RC)


@contextmanager
def figure_style() -> Iterator[None]:
    """Context manager: the facedyn style inside, the previous rcParams restored after."""
    with mpl.rc_context(RC):
        yield


def new_figure(width: float = SINGLE_COL, height: float = 2.6, **kwargs: Any) -> Figure:
    """A constrained-layout Figure on a non-interactive Agg canvas (call inside the style)."""
    kwargs.setdefault("layout", "constrained")
    fig = Figure(figsize=(width, height), **kwargs)
    FigureCanvasAgg(fig)
    return fig


def ordered_models(models: Iterable[str]) -> list[str]:
    """``models`` in the fixed order; names without a fixed place follow, sorted."""
    present = list(dict.fromkeys(models))
    known = [m for m in MODEL_ORDER if m in present]
    return known + sorted(m for m in present if m not in MODEL_ORDER)


def model_color(model: str) -> str:
    """The fixed colour of ``model`` (grey-free cycle colour for unknown names)."""
    if model in MODEL_COLORS:
        return MODEL_COLORS[model]
    return CYCLE[sum(map(ord, model)) % 6]  # deterministic, skips black/yellow


def model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def title(text: str, subtitle: str | None = None, width: int = 70) -> str:
    """``text``, with ``subtitle`` wrapped on following lines (for narrow figures)."""
    if not subtitle:
        return text
    return text + "\n" + "\n".join(textwrap.wrap(subtitle, width=width))


def save_figure(fig: Figure, stem: str | Path) -> list[Path]:
    """Write ``<stem>.png`` (200 dpi) and ``<stem>.pdf`` atomically; close ``fig``.

    Returns the two paths written. Each file is written to a temporary file in the same
    folder and renamed over the target, so a killed job never leaves a partial figure.
    """
    stem = Path(stem)
    paths: list[Path] = []
    try:
        with figure_style():
            for fmt in ("png", "pdf"):
                path = stem.with_name(f"{stem.name}.{fmt}")

                def _write(tmp: Path, fmt: str = fmt) -> None:
                    fig.savefig(tmp, format=fmt, dpi=PNG_DPI)

                paths.append(atomic_write(path, _write))
    finally:
        close_figure(fig)
    return paths


def close_figure(fig: Figure) -> None:
    """Release ``fig`` (and drop it from pyplot's registry if pyplot manages it)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close(fig)
    fig.clear()
