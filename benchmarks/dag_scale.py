"""How long Snakemake takes to build the whole pipeline's DAG at CANDOR scale.

Builds a CANDOR-shaped cohort of placeholder videos (1,656 conversations x 2 speakers =
3,312 videos, 1,429 speakers, about 31 minutes each) in a scratch working directory, writes
the manifest table the DAG reads (``results/cohort/manifest.parquet``: fps, n_frames, size
and status per video, so no video is opened or decoded), then times ``snakemake -n`` for
the default target, i.e. every stage from landmarks to figures.

    .venv/bin/python benchmarks/dag_scale.py            # prints one JSON record
    .venv/bin/python benchmarks/dag_scale.py --conversations 100 --workdir /tmp/dag

Results: docs/performance.md ("DAG at CANDOR scale"). tests/test_dag_scale.py runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")

#: CANDOR: 1,656 conversations between 1,429 speakers, two videos per conversation.
CONVERSATIONS = 1656
SPEAKERS = 1429
#: ~31 M frames at 5 fps over 3,312 videos: about 9,400 sampled frames = 31 minutes each.
DURATION_S = 1872.0
FPS = 30.0


def candor_shaped_manifest(
    videos_dir: Path, conversations: int = CONVERSATIONS, speakers: int = SPEAKERS, seed: int = 0
) -> pd.DataFrame:
    """Manifest rows of a CANDOR-shaped cohort, with an empty placeholder file per video.

    Every speaker takes part in at least one conversation (most in one, some in several,
    as in CANDOR), never twice in the same one. Ids look like CANDOR's (hex uuids).
    """
    rng = np.random.default_rng(seed)
    speaker_ids = [f"{i:08x}{rng.integers(0, 2**32):08x}" for i in range(speakers)]
    # 2 * conversations seats: every speaker once, the remaining seats drawn at random
    seats = np.array(
        list(range(speakers)) + list(rng.integers(0, speakers, 2 * conversations - speakers))
    )
    for _ in range(1000):  # reshuffle until nobody talks to themselves
        rng.shuffle(seats)
        if not (seats[0::2] == seats[1::2]).any():
            break
    else:
        raise ValueError("could not seat the speakers in distinct pairs")
    rows = []
    for c in range(conversations):
        a, b = int(seats[2 * c]), int(seats[2 * c + 1])
        session = f"{c:04x}{rng.integers(0, 2**48):012x}"
        for channel, (me, partner) in enumerate(((a, b), (b, a))):
            video = videos_dir / session / f"{speaker_ids[me]}.mp4"
            rows.append(
                {
                    "session_id": session,
                    "speaker_id": speaker_ids[me],
                    "video": str(video),
                    "fps": FPS,
                    "n_frames": int(DURATION_S * FPS),
                    "width": 1280,
                    "height": 720,
                    "duration_s": DURATION_S,
                    "partner_id": speaker_ids[partner],
                    "channel": "LR"[channel],
                    "status": "ok",
                    "reason": None,
                }
            )
    return pd.DataFrame(rows)


def prepare(workdir: Path, conversations: int = CONVERSATIONS, speakers: int = SPEAKERS) -> dict:
    """Scratch cohort under ``workdir``: placeholder videos, the user table the config
    names, the manifest the DAG reads, and the config override. Returns the override."""
    from facedyn.datasets.manifest import write_manifest

    workdir.mkdir(parents=True, exist_ok=True)
    df = candor_shaped_manifest(workdir / "videos", conversations, min(speakers, conversations))
    for video in df["video"]:
        Path(video).parent.mkdir(parents=True, exist_ok=True)
        Path(video).touch()
    table = workdir / "videos.csv"
    df[["speaker_id", "session_id", "video", "partner_id", "channel"]].to_csv(table, index=False)
    # What `rule manifest` would write after probing every video: written here so that
    # nothing is decoded (the checkpoint has no inputs for dataset.kind: manifest and its
    # output exists, so Snakemake takes it as done).
    write_manifest(
        df,
        workdir / "results/cohort/manifest.parquet",
        {"dataset_kind": "manifest", "table": str(table)},
    )
    # The audit's control cohorts are off: they would be generated (a manifest input), and
    # at 144 videos they change nothing of the DAG's scale.
    override = {
        "run_name": "candor_scale",
        "dataset": {"kind": "manifest", "table": str(table)},
        "audit": {"cohorts": {"null_dynamics": False, "swap": False, "null_swap": False}},
    }
    (workdir / "scale.yaml").write_text(yaml.safe_dump(override))
    return override


def dry_run(workdir: Path, *extra: str, targets: tuple[str, ...] = ()) -> dict:
    """Time ``snakemake -n`` of ``targets`` (default: the default target); count its jobs
    per rule."""
    cmd = [
        SNAKEMAKE,
        "-n",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        *extra,
        "--configfile",
        str(ROOT / "config/config.yaml"),
        str(workdir / "scale.yaml"),
        "--",
        *targets,
    ]
    start = time.perf_counter()
    res = subprocess.run(
        cmd, cwd=workdir, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}
    )
    seconds = time.perf_counter() - start
    if res.returncode != 0:
        raise RuntimeError(f"snakemake -n failed ({res.returncode}):\n{res.stderr[-4000:]}")
    return {"seconds": round(seconds, 2), **job_counts(res.stdout + res.stderr)}


def job_counts(text: str) -> dict:
    """Parse Snakemake's "Job stats" table: {"jobs": total, "per_rule": {rule: n}}."""
    stats = text.split("Job stats:")[-1]
    per_rule = {}
    for line in stats.splitlines():
        m = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if m:
            per_rule[m.group(1)] = int(m.group(2))
    total = per_rule.pop("total", None)
    if total is None:
        raise RuntimeError(f"no job stats in snakemake's output:\n{text[-2000:]}")
    return {"jobs": total, "per_rule": per_rule}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=CONVERSATIONS)
    parser.add_argument("--speakers", type=int, default=SPEAKERS)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="scratch folder (default: a temporary one, removed afterwards)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dag_scale_") as tmp:
        workdir = args.workdir or Path(tmp)
        start = time.perf_counter()
        prepare(workdir, args.conversations, args.speakers)
        setup_s = time.perf_counter() - start
        record = {
            "conversations": args.conversations,
            "videos": 2 * args.conversations,
            "setup_seconds": round(setup_s, 2),
            "dry_run": dry_run(workdir),
            "dry_run_quiet": dry_run(workdir, "--quiet", "rules"),
            "cpus": os.cpu_count(),
        }
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
