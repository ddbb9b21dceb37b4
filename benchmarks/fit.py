"""Speed of the batched landmark fitter against a plain frame-by-frame reference.

Both minimise the same objective with Adam and the same iteration budget
(`facedyn.flame.fit.fit_landmarks`); they differ in what the issue asks to compare:

* batched: all frames of a track at once, landmark-only fast path;
* reference: one frame at a time, full-mesh LBS (every vertex), so the same code with a
  full-mesh landmark model and a batch of one frame.

Reports frames/s of both and the ratio, measured in one run on one CPU thread (and on the
GPU when one is visible). Landmark tracks come from `results/landmarks/` of the default run.

``--solvers`` instead compares the two solvers (``fit.solver: adam | lm``) on a track drawn
from the stand-in head with known parameters (exact landmarks): the objective reached, the
expression and jaw error against the truth, and the time, at several budgets.

    python benchmarks/fit.py [--frames 300] [--reference-frames 8] [--n-shape 100 --n-expr 50]
    python benchmarks/fit.py --solvers [--frames 300]
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
from facedyn.flame.camera import focal_from_fov, project
from facedyn.flame.fit import FitSettings, fit_landmarks
from facedyn.flame.model import FLAME
from facedyn.tables import read_table


class FullMeshLandmarks(nn.Module):
    """The reference's model: landmarks through the full mesh (every vertex skinned)."""

    def __init__(self, flame: FLAME) -> None:
        super().__init__()
        self.flame = flame
        self.v_template = flame.v_template

    def forward(
        self,
        shape: torch.Tensor | None = None,
        expression: torch.Tensor | None = None,
        pose: torch.Tensor | None = None,
        kind: str = "2d",
    ) -> torch.Tensor:
        return self.flame.landmarks(shape, expression, pose, kind=kind)


def load_track(n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    for path in sorted(glob.glob("results/landmarks/*/*.parquet")):
        df, _ = read_table(path)
        df = df[df["detected"]].head(n_frames)
        if len(df) == n_frames:
            return landmarks_array(df), df["frame"].to_numpy(), df["time_s"].to_numpy()
    raise SystemExit("no landmark table with enough frames: run `snakemake --cores 2` first")


def known_track(flame: FLAME, n_frames: int, n_moving: int = 15, seed: int = 0):
    """Exact landmarks of a head with known parameters: fixed shape, ``n_moving`` expression
    components and the jaw moving at speech-like rates, a turning head."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / 15.0
    shape = np.repeat(rng.normal(0, 0.8, (1, flame.n_shape)), n_frames, 0)
    expr = np.zeros((n_frames, flame.n_expr))
    rates = rng.uniform(0.2, 2.0, n_moving)
    expr[:, :n_moving] = 0.8 * np.sin(2 * np.pi * rates * t[:, None] + rng.uniform(0, 6, n_moving))
    pose = np.zeros((n_frames, 15))
    pose[:, 0] = 0.08 * np.sin(2 * np.pi * 0.2 * t)
    pose[:, 1] = 0.2 * np.sin(2 * np.pi * 0.13 * t)
    pose[:, 6] = 0.1 * (1 + np.sin(2 * np.pi * 4.0 * t))
    trans = np.tile([0.0, -0.03, -0.55], (n_frames, 1))
    f = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        lmk = project(
            flame.landmark_model()(f(shape), f(expr), f(pose), kind="2d"),
            f(trans),
            focal_from_fov(320, 60.0),
            159.5,
            119.5,
        ).numpy()
    return lmk, t, expr[:, :n_moving], pose[:, 6]


def compare_solvers(flame: FLAME, n_frames: int) -> None:
    lmk, t, expr, jaw = known_track(flame, n_frames)
    frames = np.arange(n_frames)
    model = flame.landmark_model()
    print(
        f"| solver, budget ({n_frames} frames, {flame.n_shape} shape / {flame.n_expr} "
        "expression, exact landmarks, 1 CPU thread) | objective | expression RMSE | "
        "expression r (median) | jaw r | s |"
    )
    print("|---|---|---|---|---|---|")
    budgets = [
        ("adam", 30, 60),
        ("adam", 30, 200),
        ("adam", 30, 600),
        ("lm", 1, 2),
        ("lm", 2, 5),
        ("lm", 4, 12),
    ]
    for solver, rigid, full in budgets:
        keys = (
            {"rigid_iterations": rigid, "iterations": full}
            if solver == "adam"
            else {"lm_rigid_iterations": rigid, "lm_iterations": full}
        )
        settings = FitSettings(n_shape=flame.n_shape, n_expr=flame.n_expr, solver=solver, **keys)
        start = time.perf_counter()
        res = fit_landmarks(lmk, frames, t, 320, 240, model, settings)
        seconds = time.perf_counter() - start
        fitted = res.expression[:, : expr.shape[1]]
        r = [np.corrcoef(fitted[:, k], expr[:, k])[0, 1] for k in range(expr.shape[1])]
        print(
            f"| {solver}, {rigid}+{full} | {res.loss_history[-1]:.3f} | "
            f"{np.sqrt(((fitted - expr) ** 2).mean()):.3f} | {np.median(r):.3f} | "
            f"{np.corrcoef(res.jaw[:, 0], jaw)[0, 1]:.3f} | {seconds:.1f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--reference-frames", type=int, default=8)
    ap.add_argument("--n-shape", type=int, default=100)
    ap.add_argument("--n-expr", type=int, default=50)
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--rigid-iterations", type=int, default=30)
    ap.add_argument(
        "--solvers",
        action="store_true",
        help="compare Adam and Levenberg-Marquardt on a track with known parameters",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    head = write_synthetic_flame(
        "results/benchmarks/head", n_shape=args.n_shape, n_expr=args.n_expr
    )
    flame = load_flame(head["model"], args.n_shape, args.n_expr, head["landmark_embedding"])
    if args.solvers:
        compare_solvers(flame, args.frames)
        return
    settings = FitSettings(
        n_shape=args.n_shape,
        n_expr=args.n_expr,
        iterations=args.iterations,
        rigid_iterations=args.rigid_iterations,
    )
    lmk, frames, times = load_track(args.frames)

    start = time.perf_counter()
    fit_landmarks(lmk, frames, times, 320, 240, flame.landmark_model(), settings)
    batched_fps = len(lmk) / (time.perf_counter() - start)

    reference = FullMeshLandmarks(flame)
    start = time.perf_counter()
    for k in range(args.reference_frames):
        fit_landmarks(
            lmk[k : k + 1], frames[k : k + 1], times[k : k + 1], 320, 240, reference, settings
        )
    reference_fps = args.reference_frames / (time.perf_counter() - start)

    print(
        f"| fitter, {args.n_shape} shape / {args.n_expr} expression, "
        f"{args.rigid_iterations}+{args.iterations} Adam steps, 1 CPU thread | frames/s |"
    )
    print("|---|---|")
    print(f"| batched, landmark-only fast path ({len(lmk)} frames) | {batched_fps:.1f} |")
    print(
        f"| reference: frame by frame, full mesh ({args.reference_frames} frames) "
        f"| {reference_fps:.2f} |"
    )
    print(f"| speed-up | {batched_fps / reference_fps:.0f}x |")
    if torch.cuda.is_available():
        gpu = flame.to("cuda").landmark_model()
        fit_landmarks(lmk[:10], frames[:10], times[:10], 320, 240, gpu, settings)  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        fit_landmarks(lmk, frames, times, 320, 240, gpu, settings)
        torch.cuda.synchronize()
        print(
            f"| batched on {torch.cuda.get_device_name()} | {len(lmk) / (time.perf_counter() - start):.0f} |"
        )


if __name__ == "__main__":
    main()
