"""The landmark-frame figure: one video frame with its detected, fitted and (synthetic cohort)
true iBUG-68 landmarks.

:func:`landmark_frame` returns a :class:`matplotlib.figure.Figure` in the facedyn style
(:mod:`facedyn.plots.style`); it reads no files. It is the only figure that shows a video
frame, so it checks the privacy gate (:func:`facedyn.privacy.check_frames_allowed`) before
drawing anything. The fitted landmarks come projected into the image
(:func:`facedyn.flame.reproject.fitted_landmarks`); the polylines drawn for them are
:data:`facedyn.face.ibug.IBUG68_SEGMENTS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from facedyn.face.ibug import IBUG68_SEGMENTS, landmark_nme
from facedyn.plots.style import (
    DOUBLE_COL,
    OKABE_ITO,
    SINGLE_COL,
    figure_style,
    new_figure,
)
from facedyn.privacy import check_frames_allowed

#: The marker style of each landmark set in :func:`landmark_frame` (Okabe-Ito colours,
#: distinct shapes, so the sets stay apart without colour too).
LANDMARK_STYLE: dict[str, dict[str, Any]] = {
    "detected": {
        "color": OKABE_ITO["sky_blue"],
        "marker": "o",
        "label": "detected (landmark table)",
    },
    "fitted": {"color": OKABE_ITO["vermillion"], "marker": ".", "label": "fitted FLAME, projected"},
    "true": {"color": OKABE_ITO["bluish_green"], "marker": "s", "label": "true (synthetic truth)"},
}


def _face_crop(
    image: np.ndarray, sets: Sequence[np.ndarray], margin: float
) -> tuple[int, int, int, int]:
    """Pixel box (x0, x1, y0, y1) around every landmark, ``margin`` x its size on each side."""
    h, w = image.shape[:2]
    pts = np.concatenate([s for s in sets if s is not None]).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(1)]
    if not len(pts):
        return 0, w, 0, h
    (xa, ya), (xb, yb) = pts.min(0), pts.max(0)
    size = max(xb - xa, yb - ya)
    cx, cy, half = (xa + xb) / 2, (ya + yb) / 2, size * (0.5 + margin)
    x0, x1 = int(max(0, np.floor(cx - half))), int(min(w, np.ceil(cx + half)))
    y0, y1 = int(max(0, np.floor(cy - half))), int(min(h, np.ceil(cy + half)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0, w, 0, h
    return x0, x1, y0, y1


def _draw_landmarks(ax: Any, xy: np.ndarray, kind: str) -> None:
    style = LANDMARK_STYLE[kind]
    xy = np.asarray(xy, dtype=float).reshape(68, 2)
    # A thin dark halo keeps the light colours legible on light skin and backgrounds.
    halo = [patheffects.withStroke(linewidth=1.8, foreground="black", alpha=0.55)]
    if kind == "fitted":
        for seg, closed in IBUG68_SEGMENTS:
            idx = [*seg, seg[0]] if closed else list(seg)
            ax.plot(
                xy[idx, 0],
                xy[idx, 1],
                color=style["color"],
                lw=0.9,
                zorder=4,
                solid_capstyle="round",
                path_effects=halo,
            )
        ax.plot(xy[:, 0], xy[:, 1], ls="", marker="o", ms=1.6, color=style["color"], zorder=5)
    else:
        ax.plot(
            xy[:, 0],
            xy[:, 1],
            ls="",
            marker=style["marker"],
            ms=3.4 if kind == "true" else 3.8,
            mfc="none",
            mec=style["color"],
            mew=0.8,
            zorder=3,
            path_effects=halo,
        )


def _legend_handle(kind: str) -> Line2D:
    style = LANDMARK_STYLE[kind]
    if kind == "fitted":
        return Line2D(
            [], [], color=style["color"], lw=0.9, marker="o", ms=1.6, label=style["label"]
        )
    return Line2D(
        [],
        [],
        ls="",
        marker=style["marker"],
        ms=4,
        mfc="none",
        mec=style["color"],
        mew=0.8,
        label=style["label"],
    )


def _frame_panel(
    ax: Any,
    image: np.ndarray,
    box: tuple[int, int, int, int],
    sets: Sequence[tuple[str, np.ndarray]],
    heading: str,
    note: str,
) -> None:
    x0, x1, y0, y1 = box
    ax.imshow(
        image[y0:y1, x0:x1],
        extent=(x0 - 0.5, x1 - 0.5, y1 - 0.5, y0 - 0.5),
        interpolation="bilinear",
    )
    for kind, xy in sets:
        _draw_landmarks(ax, xy, kind)
    ax.set_xlim(x0 - 0.5, x1 - 0.5)
    ax.set_ylim(y1 - 0.5, y0 - 0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(heading)
    ax.text(
        0.02,
        0.02,
        note,
        transform=ax.transAxes,
        ha="left",
        va="bottom",
        fontsize=7.5,
        color="black",
        bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "none", "alpha": 0.85},
    )


def landmark_frame(
    image_rgb: np.ndarray,
    detected_xy: np.ndarray,
    fitted_xy: np.ndarray,
    *,
    dataset_kind: str,
    frames_in_figures: bool = False,
    true_xy: np.ndarray | None = None,
    subtitle: str = "",
    margin: float = 0.3,
) -> Figure:
    """One video frame with the detected iBUG-68 landmarks (open circles) and the fitted
    FLAME model's projected 68 landmarks (wireframe); with ``true_xy`` (synthetic cohort) a
    second panel shows the true landmarks against the fitted ones.

    Each panel is cropped to the face (``margin`` x the landmarks' extent around them) and
    states its NME (:func:`facedyn.face.ibug.landmark_nme`: % of the reference's inter-ocular distance; panel
    one against the detection, i.e. the fitter's own ``nme``; panel two against the truth).

    Raises:
        ValueError: for a non-synthetic ``dataset_kind`` unless ``frames_in_figures`` is True
            (``privacy.frames_in_figures``), before anything is drawn; or bad array shapes.
    """
    check_frames_allowed(dataset_kind, frames_in_figures)
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image_rgb must be an (H, W, 3) RGB array, got shape {image.shape}")
    detected = np.asarray(detected_xy, dtype=float).reshape(68, 2)
    fitted = np.asarray(fitted_xy, dtype=float).reshape(68, 2)
    truth = None if true_xy is None else np.asarray(true_xy, dtype=float).reshape(68, 2)
    box = _face_crop(image, [detected, fitted, truth], margin)
    panels = [
        (
            "Detected and fitted landmarks",
            [("detected", detected), ("fitted", fitted)],
            f"NME fitted vs. detected: {100 * landmark_nme(fitted, detected):.1f} %",
        )
    ]
    if truth is not None:
        panels.append(
            (
                "True and fitted landmarks",
                [("true", truth), ("fitted", fitted)],
                f"NME fitted vs. true: {100 * landmark_nme(fitted, truth):.1f} %\n"
                f"NME detected vs. true: {100 * landmark_nme(detected, truth):.1f} %",
            )
        )
    aspect = (box[3] - box[2]) / max(box[1] - box[0], 1)
    width = SINGLE_COL if len(panels) == 1 else DOUBLE_COL * 0.8
    panel_w = width / len(panels)
    with figure_style():
        fig = new_figure(width, panel_w * aspect + (0.75 if subtitle else 0.55))
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (heading, sets, note) in zip(axes, panels, strict=True):
            _frame_panel(ax, image, box, sets, heading, note)
        kinds = ["detected", "fitted"] + (["true"] if truth is not None else [])
        fig.legend(
            handles=[_legend_handle(k) for k in kinds],
            loc="outside lower center",
            ncols=len(kinds),
            columnspacing=1.2,
        )
        if subtitle:
            fig.suptitle(subtitle, x=0.01, ha="left", fontsize=8, color="0.3")
    return fig
