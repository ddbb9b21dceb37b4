"""The privacy gate for figures that show video frames.

A light module (no plotting imports), so the workflow can ask the same question while the
DAG is built that the figure code asks before it opens a video.
"""

from __future__ import annotations


def frames_allowed(dataset_kind: str, frames_in_figures: bool) -> bool:
    """Whether figures may show video frames: always for the synthetic cohort, for any other
    dataset only with ``privacy.frames_in_figures: true`` (exactly ``True``)."""
    return dataset_kind == "synthetic" or frames_in_figures is True


def check_frames_allowed(dataset_kind: str, frames_in_figures: bool) -> None:
    """Raise :class:`ValueError` unless :func:`frames_allowed`: the one gate every figure that
    draws a video frame passes, so no caller can put a real participant's face in a figure
    by default."""
    if not frames_allowed(dataset_kind, frames_in_figures):
        raise ValueError(
            f"refusing to draw a video frame of a non-synthetic dataset (dataset.kind: "
            f"{dataset_kind!r}): frames of real participants appear in figures only with "
            f"`privacy.frames_in_figures: true` in the config (currently {frames_in_figures!r})"
        )
