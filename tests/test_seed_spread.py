"""analysis/seed_spread.py's accounting: runs of config/seeds.yaml pooled per model."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
from workflow_utils import ROOT

sys.path.insert(0, str(ROOT / "analysis"))
import seed_spread


def test_the_seeds_config_differs_from_main_in_the_training_seed_only():
    import yaml

    experiments = seed_spread.spread_experiments()
    assert experiments["main"] is None and len(experiments) >= 3
    seeds = [s for s in experiments.values() if s is not None]
    assert len(set(seeds)) == len(seeds) and min(seeds) >= 10  # no fold shares a seed
    config = yaml.safe_load(seed_spread.CONFIG.read_text())["identify"]["experiments"]
    for name in experiments:
        assert {k: v for k, v in config[name].items() if k != "train_seed"} == config["main"]


def test_models_are_pooled_over_training_and_cohort_seeds(tmp_path):
    top1 = {
        (0, "main"): {"conformer": 0.5, "stats_lr": 0.4},
        (0, "main_seed100"): {"conformer": 0.3, "stats_lr": 0.4},
        (2, "main"): {"conformer": 0.6, "stats_lr": 0.2},
        (2, "main_seed100"): {"conformer": 0.7, "stats_lr": 0.2},
    }
    runs = {}
    for (cohort, experiment), models in top1.items():
        runs[cohort] = tmp_path / f"cohort{cohort}"
        path = runs[cohort] / "results" / "identify" / experiment / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "models": {
                        m: {"top1": v, "top1_ci": [v - 0.1, v + 0.1]} for m, v in models.items()
                    }
                }
            )
        )
    rows = seed_spread.collect(runs, {"main": None, "main_seed100": 100}, run_seed=0)
    assert sorted({r["train_seed"] for r in rows}) == [0, 100] and len(rows) == 8
    s = seed_spread.summarize(rows)
    conformer = s["models"]["conformer"]
    assert s["runs"] == 4 and conformer["n"] == 4
    assert math.isclose(conformer["mean"], 0.525)
    assert math.isclose(conformer["sd"], float(np.std([0.5, 0.3, 0.6, 0.7], ddof=1)))
    assert sorted(conformer["per_cohort"]) == [0, 2] and conformer["min"] == 0.3
    assert math.isclose(conformer["per_cohort"][0], 0.4)
    assert math.isclose(conformer["per_cohort"][2], 0.65)
    assert s["ahead"]["conformer>stats_lr"] == {"ahead": 3, "runs": 4}
    assert s["ahead"]["stats_lr>conformer"] == {"ahead": 1, "runs": 4}
    text = seed_spread.markdown(
        {
            "summary": s,
            "cohort_seeds": [0, 2],
            "cores": 8,
            "commit": "abc",
            "date": "d",
            "train_seeds": [0, 100],
        }
    )
    assert "| conformer | 52.5 % | 17.1 | 30.0 | 70.0 | 40.0 | 65.0 |" in text
    assert "| conformer |  | 3/4 |" in text

    doc = tmp_path / "performance.md"
    doc.write_text("a\n<!-- seed-spread -->\nold\n<!-- /seed-spread -->\nb\n")
    seed_spread.write_docs("new", doc)
    assert doc.read_text() == "a\n<!-- seed-spread -->\nnew\n<!-- /seed-spread -->\nb\n"
