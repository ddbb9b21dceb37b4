"""Fixtures shared by test modules.

Markers (pyproject.toml): ``workflow`` on every test that starts Snakemake on a cohort (and on
most dry runs), ``slow`` on the longest. ``python -m pytest -m "not workflow"`` is the fast
inner loop; CI runs everything.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def synthetic_head(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The synthetic head (20 shape, 15 expression components): model, landmark_embedding,
    components."""
    from facedyn.flame import write_synthetic_flame

    return write_synthetic_flame(tmp_path_factory.mktemp("head"), n_shape=20, n_expr=15)


@pytest.fixture(scope="session")
def rendered_cohort(tmp_path_factory: pytest.TempPathFactory, synthetic_head) -> Path:
    """A tiny synthetic cohort (2 speakers x 2 sessions x 5 s) rendered once per test run."""
    from facedyn.synthetic.generate import write_cohort

    head = synthetic_head
    root = tmp_path_factory.mktemp("cohort")
    write_cohort(
        root,
        {"n_speakers": 2, "sessions_per_speaker": 2, "duration_s": 5},
        head_model=str(head["model"]),
        head_embedding=str(head["landmark_embedding"]),
        head_components=str(head["components"]),
        workers=2,
    )
    return root


@pytest.fixture(scope="session")
def rendered_videos(rendered_cohort: Path) -> list[tuple[Path, pd.DataFrame]]:
    """(video, truth frames) of every video of :func:`rendered_cohort`."""
    from facedyn.synthetic import layout

    root = rendered_cohort
    sessions = pd.read_parquet(layout.sessions_table(root))
    frames = layout.frames_dir(root)
    return [
        (
            root / r.session_id / "processed" / f"{r.speaker_id}.mp4",
            pd.read_parquet(layout.frame_table(frames, r.session_id, r.speaker_id)),
        )
        for r in sessions.itertuples()
    ]
