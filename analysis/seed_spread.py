"""Spread of every model's top-1 over training seeds and cohort seeds.

Runs the experiments of ``config/seeds.yaml`` (the main experiment with three training seeds)
once per cohort seed, each cohort in its own folder (``--workdir``/cohort<S>, a config file
there setting ``dataset.synthetic.seed``), with this checkout's workflow:

    snakemake --cores N --configfile config/config.yaml config/seeds.yaml <S>.yaml \\
        --directory <workdir>/cohort<S> results/identify/<experiment>/metrics.json ...

then reads every ``metrics.json`` and reports, per model, the mean and sd of top-1 over all
runs (training seed x cohort seed), the per-cohort means, and for every pair of models in
how many runs the first is ahead: an ordering the README may state holds in every run.
Prints markdown, writes ``<workdir>/seed_spread.json`` and, with ``--write-docs``, replaces
the block between ``<!-- seed-spread -->`` markers in docs/performance.md.

A folder that already holds a finished run is reused (Snakemake runs only what is missing).

    python analysis/seed_spread.py [--cohort-seeds 0,2] [--cores 8] [--workdir runs/seeds]
                                     [--folder 0=DIR] [--rerun-triggers mtime] [--write-docs]
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from facedyn.docblocks import git_commit, replace_block

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
CONFIG = ROOT / "config" / "seeds.yaml"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
MARKERS = ("<!-- seed-spread -->", "<!-- /seed-spread -->")


def spread_experiments(config: Path = CONFIG) -> dict[str, int | None]:
    """Experiment name -> its train_seed (None: the run's seed) of the seeds config."""
    experiments = yaml.safe_load(config.read_text())["identify"]["experiments"]
    return {
        name: (value or {}).get("train_seed")
        for name, value in experiments.items()
        if value is not False
    }


def collect(
    runs: dict[int, Path], experiments: dict[str, int | None], run_seed: int = 0
) -> list[dict[str, Any]]:
    """One row per (cohort seed, experiment, model): its top-1 and CI."""
    rows = []
    for cohort_seed, folder in runs.items():
        for name, train_seed in experiments.items():
            path = folder / "results" / "identify" / name / "metrics.json"
            models = json.loads(path.read_text())["models"]
            for model, m in models.items():
                rows.append(
                    {
                        "cohort_seed": cohort_seed,
                        "experiment": name,
                        "train_seed": run_seed if train_seed is None else train_seed,
                        "model": model,
                        "top1": float(m["top1"]),
                        "top1_ci": m.get("top1_ci"),
                    }
                )
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per model: mean, sd (ddof 1), min, max over runs, per-cohort mean; per ordered pair of
    models: the runs in which the first has the higher top-1."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    runs = sorted({(r["cohort_seed"], r["experiment"]) for r in rows})
    top1 = {(r["cohort_seed"], r["experiment"], r["model"]): r["top1"] for r in rows}
    per_model = {}
    for model in models:
        values = np.array([top1[(c, e, model)] for c, e in runs if (c, e, model) in top1])
        cohorts = sorted({c for c, _ in runs})
        per_model[model] = {
            "n": len(values),
            "mean": float(values.mean()),
            "sd": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
            "min": float(values.min()),
            "max": float(values.max()),
            "per_cohort": {
                int(c): float(
                    np.mean(
                        [top1[(c, e, model)] for cc, e in runs if cc == c and (c, e, model) in top1]
                    )
                )
                for c in cohorts
            },
        }
    ahead = {}
    for a, b in itertools.permutations(models, 2):
        shared = [(c, e) for c, e in runs if (c, e, a) in top1 and (c, e, b) in top1]
        ahead[f"{a}>{b}"] = {
            "ahead": sum(top1[(c, e, a)] > top1[(c, e, b)] for c, e in shared),
            "runs": len(shared),
        }
    return {"models": per_model, "ahead": ahead, "runs": len(runs)}


def markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    cohorts = report["cohort_seeds"]
    lines = [
        f"`python analysis/seed_spread.py --cohort-seeds "
        f"{','.join(map(str, cohorts))} --cores {report['cores']}` (commit "
        f"{report['commit']}, {report['date']}): the experiments of `config/seeds.yaml` "
        f"(training seeds {', '.join(map(str, report['train_seeds']))}) on "
        f"{len(cohorts)} cohorts, {s['runs']} runs. Top-1 over all runs:",
        "",
        "| model | mean | sd | min | max | "
        + " | ".join(f"cohort {c} mean" for c in cohorts)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(cohorts),
    ]
    for model, m in s["models"].items():
        lines.append(
            f"| {model} | {100 * m['mean']:.1f} % | {100 * m['sd']:.1f} | "
            f"{100 * m['min']:.1f} | {100 * m['max']:.1f} | "
            + " | ".join(f"{100 * m['per_cohort'][c]:.1f}" for c in cohorts)
            + " |"
        )
    models = list(s["models"])
    lines += [
        "",
        "Runs in which the row's model is ahead of the column's:",
        "",
        "| | " + " | ".join(models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for a in models:
        cells = []
        for b in models:
            pair = s["ahead"].get(f"{a}>{b}")
            cells.append("" if pair is None else f"{pair['ahead']}/{pair['runs']}")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_docs(text: str, doc: Path = DOC) -> None:
    """Replace the block between the seed-spread markers of ``doc`` with ``text`` on lines of
    its own."""
    replace_block(doc, *MARKERS, "\n" + text + "\n")


def run_cohort(
    seed: int,
    folder: Path,
    experiments: list[str],
    cores: int,
    workdir: Path,
    rerun_triggers: list[str] | None = None,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    cohort_config = workdir / f"cohort{seed}.yaml"
    cohort_config.write_text(yaml.safe_dump({"dataset": {"synthetic": {"seed": seed}}}))
    targets = [f"results/identify/{name}/metrics.json" for name in experiments]
    log = workdir / f"cohort{seed}.log"
    with log.open("w") as fh:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "snakemake",
                "--cores",
                str(cores),
                "--configfile",
                str(ROOT / "config" / "config.yaml"),
                str(CONFIG),
                str(cohort_config),
                "--directory",
                str(folder),
                *targets,
                *(["--rerun-triggers", *rerun_triggers] if rerun_triggers else []),
            ],
            cwd=ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    if proc.returncode:
        raise SystemExit(
            f"snakemake failed for cohort seed {seed} (exit {proc.returncode}); see {log}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--cohort-seeds", default="0,2", help="comma-separated dataset.synthetic.seed values"
    )
    ap.add_argument("--cores", type=int, default=8)
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "seeds")
    ap.add_argument(
        "--folder",
        action="append",
        default=[],
        metavar="SEED=DIR",
        help="run cohort SEED in DIR instead of <workdir>/cohort<SEED>, e.g. the "
        "clone of a default run (cohort seed 0) whose upstream stages it "
        "reuses; repeatable",
    )
    ap.add_argument(
        "--rerun-triggers",
        nargs="+",
        default=None,
        metavar="TRIGGER",
        help="passed to Snakemake (e.g. mtime: keep results a changed setting they do not "
        "depend on would otherwise redo, after forcing the ones it does)",
    )
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    cohort_seeds = [int(s) for s in args.cohort_seeds.split(",")]
    experiments = spread_experiments()
    run_seed = int(
        (yaml.safe_load((ROOT / "config" / "config.yaml").read_text()) or {}).get(
            "seed", yaml.safe_load(SCHEMA.read_text())["properties"]["seed"]["default"]
        )
    )
    runs = {s: args.workdir.resolve() / f"cohort{s}" for s in cohort_seeds}
    for item in args.folder:
        seed, _, folder = item.partition("=")
        if int(seed) not in runs or not folder:
            raise SystemExit(f"--folder {item!r}: expected SEED=DIR for one of {cohort_seeds}")
        runs[int(seed)] = Path(folder).resolve()
    commit = git_commit(ROOT)  # before the runs: the commit they run with
    for seed, folder in runs.items():
        run_cohort(
            seed,
            folder,
            list(experiments),
            args.cores,
            args.workdir.resolve(),
            args.rerun_triggers,
        )
    rows = collect(runs, experiments, run_seed)
    report = {
        "commit": commit,
        "date": datetime.date.today().isoformat(),
        "cores": args.cores,
        "cpu_count": os.cpu_count(),
        "cohort_seeds": cohort_seeds,
        "train_seeds": sorted({r["train_seed"] for r in rows}),
        "rows": rows,
        "summary": summarize(rows),
    }
    (args.workdir / "seed_spread.json").write_text(json.dumps(report, indent=2))
    text = markdown(report)
    print(text)
    if args.write_docs:
        write_docs(text)


if __name__ == "__main__":
    main()
