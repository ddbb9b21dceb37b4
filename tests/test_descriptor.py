"""The appearance descriptor: dlib's face recognition embedding of each video's face."""

from __future__ import annotations

import numpy as np
import pandas as pd

from facedyn.face.backends import DlibBackend
from facedyn.face.descriptor import (
    DESCRIPTOR_DIM,
    DESCRIPTOR_FRAMES_KEY,
    DESCRIPTOR_KEY,
    descriptor_of,
    mean_descriptor,
)
from facedyn.face.extract import extract_landmarks
from facedyn.synthetic import layout
from facedyn.synthetic.appearance import load_portraits


def test_every_video_has_a_descriptor_that_tells_its_portrait(rendered_cohort, rendered_videos):
    """Videos of one portrait lie closer together than videos of different portraits."""
    sessions = pd.read_parquet(layout.sessions_table(rendered_cohort))
    backend = DlibBackend()
    pool = len(load_portraits())
    vectors, portraits = [], []
    for (video, _), row in zip(rendered_videos, sessions.itertuples(), strict=True):
        _, meta = extract_landmarks(video, backend, target_fps=15, appearance_frames=3)
        assert meta[DESCRIPTOR_FRAMES_KEY] == 3
        vec = descriptor_of(meta)
        assert vec is not None and vec.shape == (DESCRIPTOR_DIM,)
        vectors.append(vec)
        portraits.append(row.photo_index % pool)  # the portrait the video was drawn with
    vectors = np.stack(vectors)
    dist = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    same = np.equal.outer(portraits, portraits) & ~np.eye(len(portraits), dtype=bool)
    other = ~np.equal.outer(portraits, portraits)
    if same.any() and other.any():
        assert dist[same].mean() < dist[other].mean()
    # no keyframes asked for: no descriptor
    _, meta = extract_landmarks(rendered_videos[0][0], backend, appearance_frames=0)
    assert meta[DESCRIPTOR_KEY] is None and descriptor_of(meta) is None


def test_mean_descriptor_and_its_metadata():
    a, b = np.zeros(DESCRIPTOR_DIM), np.ones(DESCRIPTOR_DIM)
    meta = mean_descriptor([a, b])
    assert meta[DESCRIPTOR_FRAMES_KEY] == 2
    np.testing.assert_allclose(descriptor_of(meta), np.full(DESCRIPTOR_DIM, 0.5))
    assert mean_descriptor([]) == {DESCRIPTOR_KEY: None, DESCRIPTOR_FRAMES_KEY: 0}
    assert descriptor_of({DESCRIPTOR_KEY: [1.0, 2.0]}) is None  # not a 128-d embedding
