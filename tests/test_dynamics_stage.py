"""The dynamics stage's inputs to identification: the truth ceiling's table sampled at the
fitted frames, and per-video centring."""

import numpy as np
import pandas as pd
import pytest

from facedyn.dynamics.stage import truth_table
from facedyn.tables import write_table


def test_truth_table_samples_the_fitted_frames(tmp_path):
    fitted = pd.DataFrame(
        {"frame": [0, 2, 4], "time_s": [0.0, 1 / 15, 2 / 15], "valid": [True, False, True]}
    )
    truth = pd.DataFrame(
        {
            "frame": np.arange(6),
            "expr_000": np.arange(6.0),
            "jaw_0": 0.0,
            "shape_000": 1.0,
            "lx00": 5.0,
        }
    )
    write_table(fitted, tmp_path / "f.parquet")
    write_table(truth, tmp_path / "t.parquet")
    table = truth_table(tmp_path / "f.parquet", tmp_path / "t.parquet")
    assert table["frame"].tolist() == [0, 2, 4] and table["valid"].all()
    assert table["expr_000"].tolist() == [0.0, 2.0, 4.0] and "lx00" not in table
    write_table(truth.iloc[:3], tmp_path / "short.parquet")
    with pytest.raises(ValueError, match="same video"):
        truth_table(tmp_path / "f.parquet", tmp_path / "short.parquet")


def test_center_removes_each_videos_static_offset_only():
    from facedyn.dynamics.features import store_from_tables
    from facedyn.dynamics.stage import center_videos

    t = np.arange(40) / 15
    tables = [
        pd.DataFrame(
            {
                "frame": np.arange(40),
                "time_s": t,
                "valid": True,
                "expr_000": offset + np.sin(2 * np.pi * t),
                "jaw_0": offset,
                "jaw_1": 0.0,
                "jaw_2": 0.0,
            }
        )
        for offset in (5.0, -3.0)
    ]
    videos = [{"session_id": f"s{i}", "speaker_id": f"p{i}", "path": ""} for i in range(2)]
    store = store_from_tables(videos, tables, "expr_jaw", n_expr=1)
    before = store.features.copy()
    center_videos(store)
    for v in range(2):
        block = store.features[store.rows(v)]
        assert np.abs(block.mean(axis=0)).max() < 1e-5
        # the movement is untouched: differences between frames are the same
        np.testing.assert_allclose(
            np.diff(block, axis=0), np.diff(before[store.rows(v)], axis=0), atol=1e-5
        )
