"""Where the synthetic cohort keeps its files: the one statement of the layout that the
generator writes and that the workflow, the identification's truth source and validation
read (:mod:`facedyn.synthetic.generate` describes the contents)::

    <root>/cohort.json                                  counts, settings, provenance (the target)
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

#: The cohort's description (counts, settings, provenance) under its root: the workflow's target.
COHORT_FILE = "cohort.json"


def cohort_file(root: PathLike) -> Path:
    """``<root>/cohort.json``."""
    return Path(root) / COHORT_FILE


def root_of(cohort_file_path: PathLike) -> Path:
    """The cohort root of its `cohort.json`."""
    return Path(cohort_file_path).parent


def truth_dir(root: PathLike) -> Path:
    """``<root>/truth``: the ground truth, read by validation, figures and the experiments
    with ``source: truth``."""
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
