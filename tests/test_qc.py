"""The ``qc`` stage: every manifest video's landmark and FLAME table found by its ids
(``.../{session}/{speaker}.parquet``), the QC table written with its provenance."""

from __future__ import annotations

import numpy as np
import pandas as pd

from facedyn.datasets.manifest import write_manifest
from facedyn.datasets.records import MANIFEST_COLUMNS
from facedyn.face.extract import COLUMNS
from facedyn.names import table_ids
from facedyn.qc import build_qc, index_tables, run_qc
from facedyn.tables import read_table, write_table


def test_table_ids_are_the_folder_and_the_file_name():
    assert table_ids("results/landmarks/s1/00123.parquet") == ("s1", "00123")
    assert table_ids("/abs/flame/2024.01/a.b-c.parquet") == ("2024.01", "a.b-c")
    assert table_ids("results//flame/./s/p.parquet") == ("s", "p")
    paths = ["r/landmarks/s1/a.parquet", "r/landmarks/s2/a.parquet"]
    assert index_tables(paths) == {("s1", "a"): paths[0], ("s2", "a"): paths[1]}


def _landmark_table(path, session: str, speaker: str, n: int = 60):
    df = pd.DataFrame({c: [0.0] * n for c in COLUMNS}).assign(
        detected=True, tracked=False, frame=range(0, 2 * n, 2), time_s=np.arange(n) / 15.0
    )
    ids = {"session_id": session, "speaker_id": speaker}
    meta = {"status": "ok", **ids, "sampled_fps": 15.0, "width": 320, "height": 240}
    return str(write_table(df, path, meta))


def test_stage_writes_the_qc_of_every_manifest_video(tmp_path):
    keys = [("s1", "007"), ("s2", "007"), ("s2", "008")]
    manifest = pd.DataFrame([{c: None for c in MANIFEST_COLUMNS} for _ in keys])
    manifest = manifest.assign(
        session_id=[k[0] for k in keys],
        speaker_id=[k[1] for k in keys],
        video=[str(tmp_path / f"{se}_{sp}.mp4") for se, sp in keys],
        fps=30.0,
        n_frames=120,
        width=320,
        height=240,
        duration_s=4.0,
        partner_id="",
        channel="",
        status="ok",
        reason="",
    )
    write_manifest(manifest, tmp_path / "manifest.parquet")
    landmarks = [
        _landmark_table(tmp_path / "landmarks" / se / f"{sp}.parquet", se, sp)
        for se, sp in keys[:2]
    ]
    qc = run_qc(
        tmp_path / "manifest.parquet",
        landmarks,
        [],
        tmp_path / "qc/videos.parquet",
        {"min_valid_frames": 10},
        provenance={"config_hash": "c0"},
    )
    written, meta = read_table(tmp_path / "qc/videos.parquet")
    assert meta["provenance"] == {"config_hash": "c0"}
    pd.testing.assert_frame_equal(written, qc, check_dtype=False)
    assert written["speaker_id"].tolist() == ["007", "007", "008"]  # ids stay strings
    expected = build_qc(manifest, dict(zip(keys[:2], landmarks, strict=True)), min_valid_frames=10)
    assert written["status"].tolist() == expected["status"].tolist()
    assert written["reason_code"].tolist() == expected["reason_code"].tolist()
    assert written["reason_code"].tolist()[2] == "no_landmark_table"
    assert "no_landmark_table" not in written["reason_code"].tolist()[:2]  # found by ids
