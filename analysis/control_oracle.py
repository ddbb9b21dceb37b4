"""The disentanglement control from exact landmarks: how much of its leak the fitter adds.

Takes a finished run whose main dataset is a control cohort (``--run``, e.g. ``runs/control``:
``snakemake --configfile config/config.yaml control.yaml --directory runs/control`` with
``control.yaml`` setting ``dataset.synthetic: {name: control, signature_strength: 0}`` and
``audit.cohorts`` off), writes a second run folder
(``--out``) whose landmark tables hold the cohort's exact projected landmarks at the same
sampled frames (every frame detected), shares the cohort (``resources/``, linked) and the
manifest and head model (copied with their times), and runs the main experiment there with
the same config files (``--configfile``, after config/config.yaml): ``fit_flame``, folds, training and evaluation, nothing upstream.
Top-1 there against the run's own ``main`` (dlib) and ``truth`` separates the detector's
share of the leak from the fitter's. For both runs it then prints top-1 per model and how
well the true head shape predicts each video's mean error in fitted expression (R^2 of a
ridge regression over held-out speakers, per component): shape leaking into expression.

    python analysis/control_oracle.py --run runs/control --out runs/control_oracle \\
        --configfile control.yaml [extra.yaml ...] [--cores 2] [--cohort control]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from facedyn.face.extract import with_true_landmarks
from facedyn.flame.quality import cohort_quality, shape_expression_leak
from facedyn.synthetic import layout

CONFIGS = ["config/config.yaml"]


def exact_landmark_tables(run: Path, out: Path, cohort: str) -> int:
    """Write ``out``'s landmark tables: ``run``'s rows with the truth's landmarks."""
    truth = layout.frames_dir(run / "resources/synthetic" / cohort)
    paths = sorted(map(Path, glob.glob(str(run / "results/landmarks/*/*.parquet"))))
    for path in paths:
        with_true_landmarks(
            path,
            layout.frame_table(truth, path.parent.name, path.stem),
            out / "results/landmarks" / path.parent.name / path.name,
            landmarks="exact (cohort truth)",
        )
    return len(paths)


def shape_leak_r2(run: Path, cohort: str) -> dict[str, float]:
    """`facedyn.flame.quality.shape_expression_leak` over the run's fitted tables."""
    truth_root = layout.frames_dir(run / "resources/synthetic" / cohort)
    fitted = map(Path, sorted(glob.glob(str(run / "results/flame/*/*.parquet"))))
    _, videos, _ = cohort_quality(
        (p, layout.frame_table(truth_root, p.parent.name, p.stem)) for p in fitted
    )
    named = [f"expr_{k:03d}" for k in range(15)] + ["jaw_0"]  # the features identify uses
    return shape_expression_leak(videos, named)


def report(runs: dict[str, Path], cohort: str) -> None:
    for name, run in runs.items():
        metrics = json.loads((run / "results/identify/main/metrics.json").read_text())
        top1 = {
            m: f"{v['top1']:.1%} [{v['top1_ci'][0]:.1%}, {v['top1_ci'][1]:.1%}]"
            for m, v in metrics["models"].items()
        }
        r2 = shape_leak_r2(run, cohort)
        print(f"{name}: chance {metrics['chance']:.1%}; top-1 {top1}")
        print(
            "  shape -> mean expression error, R^2 per component",
            {c: round(v, 2) for c, v in r2.items()},
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/control"))
    ap.add_argument("--out", type=Path, default=Path("runs/control_oracle"))
    ap.add_argument("--configfile", nargs="*", default=[])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--cohort", default="control", help="dataset.synthetic.name of the run")
    args = ap.parse_args()
    run, out = args.run.resolve(), args.out.resolve()
    manifest = run / "results/cohort"
    if not (run / "results/identify/main/metrics.json").is_file() or not manifest.is_dir():
        raise SystemExit(f"{run} holds no finished control run: run the control there")
    (out / "results/flame").mkdir(parents=True, exist_ok=True)
    if not (out / "resources").exists():
        os.symlink(run / "resources", out / "resources")
    shutil.copytree(manifest, out / "results/cohort", dirs_exist_ok=True)  # keeps mtimes
    shutil.copy2(run / "results/flame/model.json", out / "results/flame/model.json")
    n = exact_landmark_tables(run, out, args.cohort)
    print(f"{n} landmark tables with exact landmarks")
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "results/identify/main/metrics.json",
        "--cores",
        str(args.cores),
        "--configfile",
        *CONFIGS,
        *args.configfile,
        "--directory",
        str(out),
        "--rerun-triggers",
        "mtime",
    ]  # only what depends on the rewritten tables reruns
    print(" ".join(cmd))
    if rc := subprocess.call(cmd):
        sys.exit(rc)
    report({"dlib landmarks": run, "exact landmarks": out}, args.cohort)


if __name__ == "__main__":
    main()
