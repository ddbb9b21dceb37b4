"""Speed of the batched landmark fitter against a plain frame-by-frame reference.

Both minimise the same objective with Adam and the same iteration budget
(`facedyn.flame.fit.fit_landmarks`); they differ in what the issue asks to compare:

* batched: all frames of a track at once, landmark-only fast path;
* reference: one frame at a time, full-mesh LBS (every vertex), so the same code with a
  full-mesh landmark model and a batch of one frame.

Reports frames/s of both and the ratio, measured in one run on one CPU thread (and on the
GPU when one is visible). Landmark tracks come from `results/landmarks/` of the default run
(or are synthesised from the head when absent).

    python benchmarks/fit.py [--frames 300] [--reference-frames 8] [--n-shape 100 --n-expr 50]
"""

from __future__ import annotations

import argparse
import glob
import time

import numpy as np
import torch
from torch import nn

from facedyn.face.extract import landmarks_array
from facedyn.flame import load_flame, write_synthetic_flame
from facedyn.flame.fit import FitSettings, fit_landmarks
from facedyn.flame.model import FLAME
from facedyn.tables import read_table


class FullMeshLandmarks(nn.Module):
    """The reference's model: landmarks through the full mesh (every vertex skinned)."""

    def __init__(self, flame: FLAME) -> None:
        super().__init__()
        self.flame = flame
        self.v_template = flame.v_template

    def forward(self, shape: torch.Tensor | None = None, expression: torch.Tensor | None = None,
                pose: torch.Tensor | None = None, kind: str = "2d") -> torch.Tensor:
        return self.flame.landmarks(shape, expression, pose, kind=kind)


def load_track(n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    for path in sorted(glob.glob("results/landmarks/*/*.parquet")):
        df, _ = read_table(path)
        df = df[df["detected"]].head(n_frames)
        if len(df) == n_frames:
            return landmarks_array(df), df["frame"].to_numpy(), df["time_s"].to_numpy()
    raise SystemExit("no landmark table with enough frames: run `snakemake --cores 2` first")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--reference-frames", type=int, default=8)
    ap.add_argument("--n-shape", type=int, default=100)
    ap.add_argument("--n-expr", type=int, default=50)
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--rigid-iterations", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(1)
    head = write_synthetic_flame("results/benchmarks/head", n_shape=args.n_shape, n_expr=args.n_expr)
    flame = load_flame(head["model"], args.n_shape, args.n_expr, head["landmark_embedding"])
    settings = FitSettings(n_shape=args.n_shape, n_expr=args.n_expr, iterations=args.iterations,
                           rigid_iterations=args.rigid_iterations)
    lmk, frames, times = load_track(args.frames)

    start = time.perf_counter()
    fit_landmarks(lmk, frames, times, 320, 240, flame.landmark_model(), settings)
    batched_fps = len(lmk) / (time.perf_counter() - start)

    reference = FullMeshLandmarks(flame)
    start = time.perf_counter()
    for k in range(args.reference_frames):
        fit_landmarks(lmk[k:k + 1], frames[k:k + 1], times[k:k + 1], 320, 240, reference, settings)
    reference_fps = args.reference_frames / (time.perf_counter() - start)

    print(f"| fitter, {args.n_shape} shape / {args.n_expr} expression, "
          f"{args.rigid_iterations}+{args.iterations} Adam steps, 1 CPU thread | frames/s |")
    print("|---|---|")
    print(f"| batched, landmark-only fast path ({len(lmk)} frames) | {batched_fps:.1f} |")
    print(f"| reference: frame by frame, full mesh ({args.reference_frames} frames) "
          f"| {reference_fps:.2f} |")
    print(f"| speed-up | {batched_fps / reference_fps:.0f}x |")
    if torch.cuda.is_available():
        gpu = flame.to("cuda").landmark_model()
        fit_landmarks(lmk[:10], frames[:10], times[:10], 320, 240, gpu, settings)  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        fit_landmarks(lmk, frames, times, 320, 240, gpu, settings)
        torch.cuda.synchronize()
        print(f"| batched on {torch.cuda.get_device_name()} | {len(lmk) / (time.perf_counter() - start):.0f} |")


if __name__ == "__main__":
    main()
