"""Where the synthetic cohort keeps its files: the one statement of the layout that the
generator writes and that the workflow, the identification's truth source and validation
read (:mod:`facedyn.synthetic.generate` describes the contents)::

    <root>/cohort.json                                  summary, the workflow's target
    <root>/<session>/metadata.json, processed/...       videos, in CANDOR's layout
    <root>/truth/speakers.parquet                       per speaker
    <root>/truth/sessions.parquet                       per session
    <root>/truth/frames/<session>/<speaker>.parquet     per frame, aligned with the video

Plain path arithmetic (no imports beyond the standard library): the workflow calls it while
the DAG is built.
"""

from __future__ import annotations

import os
from pathlib import Path

PathLike = str | os.PathLike[str]

#: The cohort's summary file under its root.
SUMMARY = "cohort.json"


def summary(root: PathLike) -> Path:
    """``<root>/cohort.json``."""
    return Path(root) / SUMMARY


def root_of(summary_path: PathLike) -> Path:
    """The cohort root of its summary file."""
    return Path(summary_path).parent


def truth_dir(root: PathLike) -> Path:
    """``<root>/truth``: the ground truth, read only by validation and the truth ceiling."""
    return Path(root) / "truth"


def speakers_table(root: PathLike) -> Path:
    """``<root>/truth/speakers.parquet``."""
    return truth_dir(root) / "speakers.parquet"


def sessions_table(root: PathLike) -> Path:
    """``<root>/truth/sessions.parquet``."""
    return truth_dir(root) / "sessions.parquet"


def frames_dir(root: PathLike) -> Path:
    """``<root>/truth/frames``: one per-frame table per video."""
    return truth_dir(root) / "frames"


def frame_table(frames: PathLike, session: str, speaker: str) -> Path:
    """One video's per-frame truth under a :func:`frames_dir`."""
    return Path(frames) / session / f"{speaker}.parquet"
