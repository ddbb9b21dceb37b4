"""Quality and speed of a generated synthetic cohort.

Reads a cohort written by `rule synthesize_cohort` (default: the embedded default's) and
reports: generation time and frames/s (from cohort.json), the share of sampled frames in which
dlib finds the face, and the normalised mean error (inter-ocular) of dlib's 68 landmarks
against the true projected landmarks. Prints a Markdown table for docs/performance.md.

    python benchmarks/cohort.py [resources/synthetic/default] [--every 10]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from facedyn.face.backends import DlibBackend
from facedyn.face.extract import landmarks_array


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="resources/synthetic/default", type=Path)
    ap.add_argument("--every", type=int, default=10, help="sample every Nth frame")
    args = ap.parse_args()
    summary = json.loads((args.root / "cohort.json").read_text())
    sessions = pd.read_parquet(args.root / "truth" / "sessions.parquet")
    detector = DlibBackend()
    found, total, errors = 0, 0, []
    start = time.perf_counter()
    for row in sessions.itertuples():
        video = args.root / row.session_id / "processed" / f"{row.speaker_id}.mp4"
        truth = pd.read_parquet(args.root / "truth" / "frames" / row.session_id
                                / f"{row.speaker_id}.parquet")
        target = landmarks_array(truth)
        cap = cv2.VideoCapture(str(video))
        frame_index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if frame_index % args.every == 0:
                total += 1
                faces = detector.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                if faces:
                    found += 1
                    t = target[frame_index]
                    iod = np.linalg.norm(t[36] - t[45])
                    errors.append(np.linalg.norm(faces[0].landmarks - t, axis=1).mean() / iod)
            frame_index += 1
        cap.release()
    frames = summary["n_videos"] * summary["frames_per_video"]
    rows = [
        ("videos x frames", f"{summary['n_videos']} x {summary['frames_per_video']} = {frames:,}"),
        ("generation time (s)", f"{summary['seconds']:.1f}"),
        ("generation frames/s (all workers)", f"{frames / summary['seconds']:.0f}"),
        ("sampled frames", f"{total:,} (every {args.every}th)"),
        ("dlib detection rate", f"{found / max(total, 1):.1%}"),
        ("dlib vs truth NME, median", f"{np.median(errors):.3f}"),
        ("dlib vs truth NME, 90th percentile", f"{np.percentile(errors, 90):.3f}"),
        ("benchmark time (s)", f"{time.perf_counter() - start:.1f}"),
    ]
    print(f"| synthetic cohort `{args.root}` | |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
