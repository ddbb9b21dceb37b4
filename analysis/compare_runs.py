"""Where two runs of the pipeline diverge: stage by stage, identical files and the largest
numeric difference.

Compares two run folders (each holding ``resources/`` and ``results/``, e.g. two clones that
ran ``snakemake --cores 8``), file by file on the paths both have, in pipeline order: the
synthetic cohort's videos and truth, landmark tables, FLAME tables, folds, encoder
checkpoints, predictions and metrics. A file is *identical* when its bytes are; for Parquet
tables the numeric columns are also compared (metadata, which holds provenance and timings,
is not) and for checkpoints the weights, giving the largest absolute difference and the share of files whose values are equal.
The first stage with a difference is where the runs part; later stages inherit it.

    python analysis/compare_runs.py RUN_A RUN_B [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from facedyn.synthetic import layout

#: (stage, glob under the run folder), in pipeline order.
STAGES = [
    ("cohort videos", "resources/synthetic/*/*/processed/*"),
    ("cohort truth", str(layout.truth_dir("resources/synthetic/*") / "**/*.parquet")),
    ("landmarks", "results/landmarks/*/*.parquet"),
    ("FLAME fits", "results/flame/*/*.parquet"),
    ("QC", "results/qc/videos.parquet"),
    ("folds", "results/identify/*/folds.parquet"),
    ("encoder checkpoints", "results/identify/*/fold*/*.pt"),
    ("predictions", "results/identify/*/fold*/predictions.parquet"),
    ("metrics", "results/identify/*/metrics.json"),
]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def numeric_difference(a: Path, b: Path) -> float | None:
    """Largest absolute difference over the numeric columns both tables have (NaN equal to
    NaN); None when they have none or differ in rows."""
    ta, tb = pq.read_table(a), pq.read_table(b)
    if ta.num_rows != tb.num_rows:
        return None
    worst = None
    for name in sorted(set(ta.column_names) & set(tb.column_names)):
        xa, xb = ta[name].to_numpy(zero_copy_only=False), tb[name].to_numpy(zero_copy_only=False)
        if xa.dtype.kind not in "fiub" or xb.dtype.kind not in "fiub":
            continue
        xa, xb = xa.astype(np.float64), xb.astype(np.float64)
        both_nan = np.isnan(xa) & np.isnan(xb)
        diff = np.where(both_nan, 0.0, np.abs(xa - xb))
        value = float(np.nanmax(diff, initial=0.0)) if np.isfinite(diff).all() else float("inf")
        worst = value if worst is None else max(worst, value)
    return worst


def weight_difference(a: Path, b: Path) -> float | None:
    """Largest absolute difference between two checkpoints' weights (None: not comparable,
    e.g. a no-data placeholder or other tensor names)."""
    import torch

    def weights(path: Path) -> dict[str, Any] | None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception:  # not a torch file: nothing to compare beyond the bytes
            return None
        state = state.get("state_dict", state) if isinstance(state, dict) else None
        return {k: v for k, v in (state or {}).items() if isinstance(v, torch.Tensor)}

    wa, wb = weights(a), weights(b)
    if not wa or wa.keys() != (wb or {}).keys():
        return None
    return max(
        float((wa[k].double() - wb[k].double()).abs().max()) if wa[k].numel() else 0.0 for k in wa
    )


def compare_stage(a: Path, b: Path, pattern: str) -> dict[str, Any]:
    files_a = {p.relative_to(a) for p in a.glob(pattern) if p.is_file()}
    files_b = {p.relative_to(b) for p in b.glob(pattern) if p.is_file()}
    shared = sorted(files_a & files_b)
    identical, equal_values, worst = 0, 0, None
    for rel in shared:
        if sha256(a / rel) == sha256(b / rel):
            identical += 1
            equal_values += 1
            continue
        diff = None
        if rel.suffix == ".parquet":
            diff = numeric_difference(a / rel, b / rel)
        elif rel.suffix == ".pt":
            diff = weight_difference(a / rel, b / rel)
        if diff is not None:
            equal_values += diff == 0.0
            worst = diff if worst is None else max(worst, diff)
    return {
        "files": len(shared),
        "only_in_one": len(files_a ^ files_b),
        "identical_bytes": identical,
        "equal_values": equal_values,
        "max_abs_difference": worst,
    }


def compare(a: Path, b: Path) -> list[dict[str, Any]]:
    return [
        {"stage": stage, "pattern": pattern, **compare_stage(a, b, pattern)}
        for stage, pattern in STAGES
    ]


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| stage | files | identical bytes | equal values | largest difference |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        worst = "" if r["max_abs_difference"] is None else f"{r['max_abs_difference']:.3g}"
        lines.append(
            f"| {r['stage']} | {r['files']} | {r['identical_bytes']} | "
            f"{r['equal_values']} | {worst} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows = compare(args.run_a, args.run_b)
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
