"""The README's main command on a fresh clone: wall time, each stage's share, the headline
numbers.

Clones the repository (committed state only) into a new folder, runs ``snakemake --cores N``
there with this interpreter's environment (the clone's own ``src`` first on the path), then
reads the Snakemake benchmark records (``results/benchmarks/**.tsv``: each heavy job's wall
seconds), when each rule's jobs ran (the run's Snakemake log) and every experiment's
``metrics.json``. The run's CPU time (every job and Snakemake itself) comes from the
operating system's account of the finished process tree; the records' own ``cpu_time`` is
not used: Snakemake samples it periodically and loses the last interval (a 29-s training
alone records 15 CPU s). Prints markdown, writes
``results/benchmarks/default_run.json`` in the clone and, with ``--write-docs``, replaces the
block between ``<!-- default-run -->`` markers in docs/performance.md.

Run it on an otherwise idle machine: jobs on a shared CPU measure the neighbours too.

    python benchmarks/default_run.py [--cores 8] [--workdir DIR] [--write-docs]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from facedyn.docblocks import git_commit, replace_block

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
MARKERS = ("<!-- default-run -->", "<!-- /default-run -->")


def stage_of(record: Path, benchmarks: Path) -> str:
    """The stage a benchmark record belongs to: its folder under ``results/benchmarks``
    (``fit_flame``, ``train``, ...) or, for a single file, its name up to the wildcard."""
    rel = record.relative_to(benchmarks)
    if len(rel.parts) > 1:
        return rel.parts[0]
    return re.sub(r"_(default|control|smoke|[0-9a-f]{6,})$", "", rel.stem)


def stage_table(benchmarks: Path) -> list[dict[str, Any]]:
    """Jobs and summed wall seconds per stage, costliest first."""
    rows: dict[str, dict[str, float]] = defaultdict(lambda: {"jobs": 0, "wall_s": 0.0})
    for record in sorted(benchmarks.rglob("*.tsv")):
        table = pd.read_csv(record, sep="\t")
        stage = rows[stage_of(record, benchmarks)]
        stage["jobs"] += len(table)
        stage["wall_s"] += float(table["s"].sum())
    return [{"stage": k, **v} for k, v in sorted(rows.items(), key=lambda kv: -kv[1]["wall_s"])]


_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_JOB = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+)")


def timeline(log_text: str, min_wall_s: float = 10.0) -> dict[str, Any]:
    """When each rule's jobs ran, from the job start and finish stamps of a Snakemake log.

    ``rules``: per rule with at least ``min_wall_s`` of summed job wall time, its jobs, the
    first start and last finish (minutes from the run's first stamp) and the summed wall
    seconds, in order of first start, then last finish. ``running_s``: seconds during which
    exactly one job, and two or more jobs, ran. The log's stamps have one-second resolution.
    """
    now: datetime.datetime | None = None
    first: datetime.datetime | None = None
    pending: str | None = None
    started: dict[int, tuple[str, datetime.datetime]] = {}
    spans: list[tuple[str, float, float]] = []
    for line in log_text.splitlines():
        if m := _STAMP.match(line):
            now = datetime.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            first = first or now
        elif m := _JOB.match(line):
            pending = m.group(1)
        elif (m := _JOBID.match(line)) and pending and now:
            started[int(m.group(1))] = (pending, now)
            pending = None
        elif (m := _FINISHED.match(line)) and now and first and int(m.group(1)) in started:
            rule, begin = started.pop(int(m.group(1)))
            spans.append((rule, (begin - first).total_seconds(), (now - first).total_seconds()))
    per_rule: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for rule, begin_s, end_s in spans:
        per_rule[rule].append((begin_s, end_s))
    rules = [
        {
            "rule": rule,
            "jobs": len(v),
            "first_min": min(b for b, _ in v) / 60,
            "last_min": max(e for _, e in v) / 60,
            "wall_s": sum(e - b for b, e in v),
        }
        for rule, v in per_rule.items()
    ]
    rules = sorted(
        (r for r in rules if r["wall_s"] >= min_wall_s),
        key=lambda r: (r["first_min"], r["last_min"]),
    )
    events = sorted([(b, 1) for _, b, _ in spans] + [(e, -1) for _, _, e in spans])
    running = {"one": 0.0, "two_or_more": 0.0}
    count, previous = 0, 0.0
    for t, step in events:
        if count == 1:
            running["one"] += t - previous
        elif count >= 2:
            running["two_or_more"] += t - previous
        count, previous = count + step, t
    return {"rules": rules, "running_s": running}


def children_cpu_s() -> float:
    """User + system CPU seconds of this process's finished (waited-for) descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def headline(results: Path) -> dict[str, dict[str, float]]:
    """Top-1 of every model of every experiment, with its CI."""
    out = {}
    for path in sorted(results.glob("identify/*/metrics.json")):
        models = json.loads(path.read_text()).get("models", {})
        out[path.parent.name] = {
            name: {"top1": m.get("top1"), "top1_ci": m.get("top1_ci")} for name, m in models.items()
        }
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"`python benchmarks/default_run.py --cores {report['cores']}` on "
        f"{report['cpu_count']} CPU cores, commit {report['commit']}, {report['date']}:",
        "",
        f"- **wall time: {report['wall_s'] / 60:.1f} min** for {report['jobs']} jobs "
        f"(`snakemake --cores {report['cores']}`);",
        f"- CPU time: {report['cpu_s'] / 60:.1f} min (every job and Snakemake itself);",
        "- each stage's jobs (Snakemake benchmark records: wall time summed over the stage's "
        "jobs; with no more jobs than CPUs each job has a core, so this is close to the CPU "
        "time the stage costs, except the cohort's synthesis, whose render workers share its "
        "threads):",
        "",
        "| stage | jobs | wall s (sum) |",
        "|---|---|---|",
    ]
    for row in report["stages"]:
        lines.append(f"| {row['stage']} | {row['jobs']} | {row['wall_s']:.0f} |")
    if report.get("timeline"):
        running = report["timeline"]["running_s"]
        lines += [
            "",
            f"When the jobs ran (the Snakemake log's stamps): one job for "
            f"{running['one'] / 60:.1f} min, two or more for {running['two_or_more'] / 60:.1f} "
            "min; per rule, minutes from the start:",
            "",
            "| rule | jobs | first start | last finish | wall s (sum) |",
            "|---|---|---|---|---|",
        ]
        for row in report["timeline"]["rules"]:
            lines.append(
                f"| {row['rule']} | {row['jobs']} | {row['first_min']:.1f} | "
                f"{row['last_min']:.1f} | {row['wall_s']:.0f} |"
            )
    lines += ["", "| experiment | model | top-1 [95 % CI] |", "|---|---|---|"]
    for experiment, models in report["top1"].items():
        for model, m in models.items():
            lo, hi = m["top1_ci"] or (float("nan"), float("nan"))
            lines.append(
                f"| {experiment} | {model} | {100 * m['top1']:.1f} % "
                f"[{100 * lo:.1f}, {100 * hi:.1f}] |"
            )
    return "\n".join(lines)


def write_docs(text: str, doc: Path = DOC) -> None:
    """Replace the block between the default-run markers of ``doc`` with ``text`` on lines of
    its own."""
    replace_block(doc, *MARKERS, "\n" + text + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=8)
    ap.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to clone (default: a new temporary folder, kept)",
    )
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="facedyn-default-run-"))
    clone = work / "facedyn"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    commit = git_commit(clone)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(clone / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    log = work / "snakemake.log"
    cpu_before = children_cpu_s()
    start = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", str(args.cores)],
            cwd=clone,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    wall = time.perf_counter() - start
    cpu = children_cpu_s() - cpu_before
    if proc.returncode:
        raise SystemExit(f"snakemake failed (exit {proc.returncode}); see {log}")
    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", log.read_text())
    report = {
        "commit": commit,
        "date": datetime.date.today().isoformat(),
        "cores": args.cores,
        "cpu_count": os.cpu_count(),
        "wall_s": wall,
        "cpu_s": cpu,
        "jobs": int(done[-1][1]) if done else None,
        "stages": stage_table(clone / "results" / "benchmarks"),
        "top1": headline(clone / "results"),
        "timeline": timeline(log.read_text()),
    }
    out = clone / "results" / "benchmarks" / "default_run.json"
    out.write_text(json.dumps(report, indent=2))
    text = markdown(report)
    print(text)
    print(f"\n(run in {clone}; log {log})")
    if args.write_docs:
        write_docs(text)


if __name__ == "__main__":
    main()
