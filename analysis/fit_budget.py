"""Fit quality against the Adam budget, on a run folder's synthetic cohort.

Refits the first ``--videos`` landmark tables of the run (``results/landmarks/``) with each
budget of ``--budgets`` (rigid + full steps; the other fit settings are the schema's
defaults) and compares the fits with the cohort's truth (`facedyn.flame.quality`): expression
r over the head's dominant modes and components, jaw-opening r, NME, and CPU seconds per
video. Run it in the run folder (the default run's, or a development cohort's: choose the
budget there, not on the cohort the results are reported on).

    python analysis/fit_budget.py [--videos 8] [--budgets 30+60,20+40,15+30]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from facedyn.config import schema_defaults
from facedyn.flame.quality import cohort_quality, head_expression_modes
from facedyn.flame.stage import run_fit
from facedyn.synthetic import layout

# the run folder's files (run it in the run folder)
TRUTH = layout.frames_dir("resources/synthetic/default")
MODEL = "results/flame/model.json"
SCHEMA = Path("workflow/schemas/config.schema.yaml")


def default_fit_settings() -> dict[str, object]:
    """The schema's ``fit`` defaults, on the CPU."""
    return {**schema_defaults(SCHEMA, "fit"), "backend": "optimize", "device": "cpu"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--budgets", default="30+60,20+40,15+30")
    args = ap.parse_args()
    torch.set_num_threads(1)
    videos = sorted(Path("results/landmarks").glob("*/*.parquet"))[: args.videos]
    modes = head_expression_modes(json.loads(Path(MODEL).read_text())["model"])
    print(
        "| Adam steps (rigid + full) | expression r, modes | expression r, components | "
        "jaw opening r | NME | CPU s / video |"
    )
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for budget in args.budgets.split(","):
            rigid, full = (int(n) for n in budget.split("+"))
            fit = {**default_fit_settings(), "rigid_iterations": rigid, "iterations": full}
            outs = []
            start = time.process_time()
            for video in videos:
                out = Path(tmp) / budget / video.parent.name / video.name
                out.parent.mkdir(parents=True, exist_ok=True)
                run_fit(video, MODEL, out, fit)
                outs.append(out)
            cpu = (time.process_time() - start) / len(videos)
            _, _, s = cohort_quality(
                [(o, TRUTH / o.parent.name / o.name) for o in outs], modes=modes
            )
            print(
                f"| {rigid} + {full} | {s['expression_mode_r_median']:.2f} | "
                f"{s['expression_r_median']:.2f} | {s['jaw_open_r_median']:.2f} | "
                f"{s['nme_median']:.3f} | {cpu:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
