"""Parquet tables: string ids survive, metadata round-trips, writes are atomic."""

import pandas as pd
import pytest

from facedyn.tables import read_metadata, read_table, write_table


def test_ids_stay_strings_and_metadata_round_trips(tmp_path):
    df = pd.DataFrame(
        {"speaker_id": ["5e32", "0012", "1e5"], "session_id": [1, 2, 3], "value": [0.5, 1.5, 2.5]}
    )
    path = write_table(df, tmp_path / "t.parquet", {"status": "ok", "n": 3})
    back, meta = read_table(path)
    assert back["speaker_id"].tolist() == ["5e32", "0012", "1e5"]
    assert back["session_id"].tolist() == ["1", "2", "3"]
    assert meta == {"status": "ok", "n": 3}
    assert read_metadata(path) == meta


def test_failed_write_leaves_no_file(tmp_path):
    df = pd.DataFrame({"x": [object()]})  # pyarrow cannot convert a bare object
    with pytest.raises(ValueError):  # pyarrow.ArrowInvalid
        write_table(df, tmp_path / "t.parquet")
    assert list(tmp_path.iterdir()) == []
