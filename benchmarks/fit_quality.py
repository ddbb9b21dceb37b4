"""Fit quality on the synthetic cohort: detected landmarks vs the true projected landmarks.

For the first ``--videos`` videos of the default run (``results/landmarks/``), the fitter
(`facedyn.flame.stage.run_fit`, settings from the config schema's defaults) runs on

* ``dlib``: the pipeline's detected landmarks (what ``rule fit_flame`` does), and
* ``true landmarks``: the cohort's exact projected landmarks at the same sampled frames
  (the fitter's ceiling: no detector error), at the default ``landmark_sigma`` and at
  ``--oracle-sigma``;

and `facedyn.flame.quality.cohort_quality` compares each with the truth. Prints a markdown
table (the one in docs/fitting.md) and writes ``results/benchmarks/fit_quality.json``.

    python benchmarks/fit_quality.py [--videos 12] [--oracle-sigma 0.01] [--workers 2]
"""

from __future__ import annotations

import argparse
import glob
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch
import yaml

from facedyn.atomic import atomic_write_json
from facedyn.face.extract import LANDMARK_X, LANDMARK_Y
from facedyn.flame.quality import cohort_quality
from facedyn.flame.stage import run_fit
from facedyn.tables import read_table, write_table

TRUTH = Path("resources/synthetic/default/truth/frames")
MODEL = "results/flame/model.json"


def default_fit_settings() -> dict[str, Any]:
    schema = yaml.safe_load(Path("workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]["fit"]["properties"]
    fit = {k: v["default"] for k, v in props.items() if "default" in v}
    fit.update(backend="optimize", device="cpu")
    return fit


def true_landmark_table(detected: Path, out: Path) -> Path:
    """The detected table's frames with the truth's projected landmarks (all detected)."""
    df, meta = read_table(detected)
    truth, _ = read_table(TRUTH / detected.parent.name / detected.name)
    cols = [*LANDMARK_X, *LANDMARK_Y]
    merged = df.drop(columns=cols).merge(truth[["frame", *cols]], on="frame", how="inner")
    merged["detected"] = True
    write_table(merged, out, meta)
    return out


def _fit(job: tuple[str, str, dict[str, Any]]) -> None:
    landmarks, out, fit = job
    torch.set_num_threads(1)
    run_fit(landmarks, MODEL, out, fit)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--oracle-sigma", type=float, default=0.01)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    detected = [Path(p) for p in sorted(glob.glob("results/landmarks/*/*.parquet"))]
    detected = detected[: args.videos]
    if not detected or not TRUTH.is_dir():
        raise SystemExit("needs the default run's landmarks and cohort: snakemake --cores 2")
    fit = default_fit_settings()
    results: dict[str, Any] = {"videos": len(detected), "fit": fit}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        truth_lmk = [true_landmark_table(p, root / "lmk" / p.parent.name / p.name)
                     for p in detected]
        variants = {
            "dlib": (detected, fit),
            "true landmarks": (truth_lmk, fit),
            f"true landmarks, landmark_sigma {args.oracle_sigma}":
                (truth_lmk, {**fit, "landmark_sigma": args.oracle_sigma}),
        }
        for name, (inputs, settings) in variants.items():
            outs = [root / name.replace(" ", "_").replace(",", "") / p.parent.name / p.name
                    for p in inputs]
            start = time.perf_counter()
            with ProcessPoolExecutor(args.workers) as pool:
                list(pool.map(_fit, [(str(i), str(o), settings) for i, o in zip(inputs, outs, strict=False)]))
            seconds = time.perf_counter() - start
            _, _, summary = cohort_quality(
                [(o, TRUTH / o.parent.name / o.name) for o in outs])
            summary["seconds_per_video"] = seconds * args.workers / len(outs)
            results[name] = summary
    print("| landmarks | expression r, dominant components (median) | per component | "
          "jaw opening r (median, IQR) | shape RMSE (sd) | NME median |")
    print("|---|---|---|---|---|---|")
    for name in variants:
        s = results[name]
        comps = ", ".join(f"{c[-3:]} {r:.2f}" for c, r in s["expression_r_by_component"].items())
        lo, hi = s["jaw_open_r_iqr"]
        print(f"| {name} | {s['expression_r_median']:.2f} | {comps} | "
              f"{s['jaw_open_r_median']:.2f} ({lo:.2f}-{hi:.2f}) | "
              f"{s['shape_rmse_median']:.2f} | {s['nme_median']:.3f} |")
    atomic_write_json("results/benchmarks/fit_quality.json", results)


if __name__ == "__main__":
    main()
