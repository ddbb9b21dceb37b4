"""analysis/compare_runs.py: the first stage where two runs differ, and by how much."""

from __future__ import annotations

import sys

import pandas as pd
import torch
from workflow_utils import ROOT

sys.path.insert(0, str(ROOT / "analysis"))
import compare_runs


def _table(path, values, meta="a"):
    from facedyn.tables import write_table

    path.parent.mkdir(parents=True, exist_ok=True)
    write_table(
        pd.DataFrame({"frame": range(len(values)), "x": values}), path, {"provenance": meta}
    )


def test_runs_are_compared_stage_by_stage_on_values_not_metadata(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    video = "resources/synthetic/default/s1/processed/p1.mp4"
    for run in (a, b):
        (run / video).parent.mkdir(parents=True)
        (run / video).write_bytes(b"same video")
    _table(a / "results/landmarks/s1/p1.parquet", [1.0, 2.0], meta="run a")
    _table(b / "results/landmarks/s1/p1.parquet", [1.0, 2.0], meta="run b")
    _table(a / "results/flame/s1/p1.parquet", [1.0, 2.0])
    _table(b / "results/flame/s1/p1.parquet", [1.0, 2.25])
    _table(a / "results/flame/s1/p2.parquet", [0.0])  # in one run only
    for run, w in ((a, 1.0), (b, 1.5)):
        path = run / "results/identify/main/fold0/model.pt"
        path.parent.mkdir(parents=True)
        torch.save({"state_dict": {"w": torch.tensor([w, 0.0])}, "info": {"t": str(run)}}, path)
    rows = {r["stage"]: r for r in compare_runs.compare(a, b)}
    assert rows["cohort videos"] == {**rows["cohort videos"], "files": 1, "identical_bytes": 1}
    lmk = rows["landmarks"]
    assert (lmk["files"], lmk["identical_bytes"], lmk["equal_values"]) == (1, 0, 1)
    assert lmk["max_abs_difference"] == 0.0
    fits = rows["FLAME fits"]
    assert (fits["files"], fits["only_in_one"], fits["equal_values"]) == (1, 1, 0)
    assert fits["max_abs_difference"] == 0.25
    assert rows["encoder checkpoints"]["max_abs_difference"] == 0.5
    assert rows["metrics"]["files"] == 0
    text = compare_runs.markdown(list(rows.values()))
    assert "| FLAME fits | 1 | 0 | 0 | 0.25 |" in text and "| landmarks | 1 | 0 | 1 | 0 |" in text
