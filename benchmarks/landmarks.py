"""Throughput of the landmarks stage on the synthetic cohort, one core.

Runs `extract_landmarks` with one backend (``--backend dlib | mediapipe``) on videos of a
generated cohort (default: the embedded default's) with torch/OpenCV/BLAS limited to one
thread, and reports processed frames per second, the CPU time over the wall time (1.0: one
core), the share spent decoding, plus detection rate and NME against the truth.

    python benchmarks/landmarks.py [resources/synthetic/default] [--videos 6] [--fps 15]
                                   [--backend dlib]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
import pandas as pd

from facedyn.face.backends import make_backend
from facedyn.face.extract import extract_landmarks
from facedyn.face.legibility import frame_errors
from facedyn.face.video import iter_sampled_frames
from facedyn.synthetic import layout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="resources/synthetic/default", type=Path)
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--backend", choices=["dlib", "mediapipe"], default="dlib")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    sessions = pd.read_parquet(layout.sessions_table(args.root)).head(args.videos)
    backend = make_backend(args.backend)
    frames = decode_s = total_s = cpu_s = 0.0
    rates, nmes = [], []
    for row in sessions.itertuples():
        video = args.root / row.session_id / "processed" / f"{row.speaker_id}.mp4"
        t0 = time.perf_counter()
        n_decoded = sum(1 for _ in iter_sampled_frames(video, args.fps))
        decode_s += time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        df, _ = extract_landmarks(video, backend, args.fps)
        total_s += time.perf_counter() - t0
        cpu_s += time.process_time() - c0
        frames += len(df)
        assert n_decoded == len(df)
        truth = pd.read_parquet(
            layout.frame_table(layout.frames_dir(args.root), row.session_id, row.speaker_id)
        )
        nmes.append(frame_errors(df, truth))
        rates.append(df["detected"].mean())
    errors = np.concatenate(nmes)
    print(
        f"| landmarks, {args.backend}, {len(sessions)} videos at {args.fps:g} fps, 1 core "
        "| |\n|---|---|"
    )
    print(f"| processed frames | {frames:,.0f} |")
    print(f"| frames/s per core (decode + detect/track + landmarks) | {frames / total_s:.0f} |")
    print(f"| CPU time / wall time | {cpu_s / total_s:.2f} |")
    print(f"| of which decoding (share of time) | {decode_s / total_s:.0%} |")
    print(f"| detection rate | {np.mean(rates):.1%} |")
    print(
        f"| NME vs truth: median / 90th pct | {np.nanmedian(errors):.3f} / {np.nanpercentile(errors, 90):.3f} |"
    )


if __name__ == "__main__":
    main()
