"""Fit quality on the synthetic cohort: the detector's share and the fitter's share.

For the first ``--videos`` videos of the default run (``results/landmarks/``), the fitter
(`facedyn.flame.stage.run_fit`, settings from the config schema's defaults, ``--solver``)
runs on

* (a) ``true landmarks``: the cohort's exact projected landmarks at the same sampled frames
  (the fitter's ceiling: no detector error), at the default ``landmark_sigma`` and at
  ``--oracle-sigma``;
* (b) ``true landmarks + dlib-like error``: the exact landmarks plus an error drawn at the
  level measured for dlib on these videos (per landmark and axis: a constant offset per
  video with the sd of dlib's per-video mean error, plus an AR(1) process with the sd and
  lag-1 autocorrelation of dlib's error within a video; inter-ocular units);
* (c) each detector on the video: ``dlib`` (the pipeline's landmark tables, what
  ``rule fit_flame`` fits) and ``mediapipe`` (the MediaPipe backend run here on the same
  videos and frames, when the mediapipe extra is installed), its iBUG-68 alone and with its
  dense points (``--dense-embedding``, by default the synthetic head's when a run with
  ``flame.dense_embedding: synthetic`` has measured it);

and `facedyn.flame.quality.cohort_quality` compares each with the truth. Prints a markdown
table (the one in docs/fitting.md) and writes ``results/analysis/fit_quality.json``.

    python analysis/fit_quality.py [--videos 12] [--solver adam|lm] [--oracle-sigma 0.01]
                                     [--workers 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from facedyn.atomic import atomic_write_json
from facedyn.config import schema_defaults
from facedyn.face.extract import (
    LANDMARK_X,
    LANDMARK_Y,
    extract_landmarks,
    landmarks_array,
    with_true_landmarks,
)
from facedyn.flame.quality import cohort_quality, head_expression_modes
from facedyn.flame.stage import run_fit
from facedyn.synthetic import layout
from facedyn.tables import read_table, write_table

TRUTH = layout.frames_dir("resources/synthetic/default")
MODEL = "results/flame/model.json"
SCHEMA = Path("workflow/schemas/config.schema.yaml")
COMPONENTS = Path("resources/flame/synthetic/components.json")
DENSE = Path("resources/flame/synthetic/mediapipe_landmark_embedding.npz")
NAMES = (
    {f"expr_{c['index']:03d}": c["name"] for c in json.loads(COMPONENTS.read_text())["expression"]}
    if COMPONENTS.is_file()
    else {}
)


def default_fit_settings() -> dict[str, Any]:
    """The schema's ``fit`` defaults, on the CPU."""
    return {**schema_defaults(SCHEMA, "fit"), "backend": "optimize", "device": "cpu"}


def _aligned(detected: Path) -> tuple[pd.DataFrame, dict[str, Any], np.ndarray, np.ndarray]:
    """A detected table, its metadata, its (N, 68, 2) landmarks and the truth's at its frames."""
    df, meta = read_table(detected)
    truth, _ = read_table(layout.frame_table(TRUTH, detected.parent.name, detected.stem))
    true_xy = landmarks_array(truth.set_index("frame").loc[df["frame"]].reset_index())
    return df, meta, landmarks_array(df), true_xy


def measure_detector_error(detected: list[Path]) -> dict[str, np.ndarray]:
    """dlib's error against the truth (inter-ocular units), per landmark and axis (68, 2):
    ``offset_sd`` across videos of the per-video mean, ``sd`` and ``lag1`` within videos."""
    means, sds, lag1 = [], [], []
    for path in detected:
        df, _, det, true = _aligned(path)
        ok = df["detected"].to_numpy(bool) & np.isfinite(det).all(axis=(1, 2))
        iod = np.linalg.norm(true[:, 36] - true[:, 45], axis=1)[:, None, None]
        err = ((det - true) / iod)[ok]
        means.append(err.mean(0))
        centred = err - err.mean(0)
        sds.append(centred.std(0))
        lag1.append((centred[1:] * centred[:-1]).mean(0) / np.maximum(centred.var(0), 1e-12))
    return {
        "offset_sd": np.std(means, axis=0),
        "sd": np.mean(sds, axis=0),
        "lag1": np.clip(np.mean(lag1, axis=0), 0.0, 0.99),
    }


def noisy_true_landmark_table(
    detected: Path, out: Path, error: dict[str, np.ndarray], rng: np.random.Generator
) -> Path:
    """(b): the exact landmarks at the detected table's frames plus dlib-like error."""
    df, meta, _, true = _aligned(detected)
    n = len(df)
    iod = np.linalg.norm(true[:, 36] - true[:, 45], axis=1)[:, None, None]
    rho, sd = error["lag1"], error["sd"]
    innovation = rng.normal(size=(n, 68, 2)) * sd * np.sqrt(1 - rho**2)
    ar = np.empty((n, 68, 2))
    ar[0] = rng.normal(size=(68, 2)) * sd
    for t in range(1, n):
        ar[t] = rho * ar[t - 1] + innovation[t]
    noisy = true + iod * (rng.normal(size=(68, 2)) * error["offset_sd"] + ar)
    table = df.copy()
    table[LANDMARK_X], table[LANDMARK_Y] = noisy[..., 0], noisy[..., 1]
    table["detected"] = True
    write_table(table, out, meta)
    return out


def mediapipe_table(detected: Path, out: Path, backend: Any) -> Path:
    """(c): the MediaPipe backend on the video of a detected table, at the same frames."""
    df, meta = read_table(detected)
    table, mp_meta = extract_landmarks(meta["video"], backend, float(meta["sampled_fps"]))
    if not table["frame"].equals(df["frame"]):
        raise SystemExit(f"{detected}: MediaPipe sampled other frames than the table")
    write_table(table, out, {**meta, **mp_meta})
    return out


def _fit(job: tuple[str, str, dict[str, Any], str]) -> None:
    landmarks, out, fit, model = job
    torch.set_num_threads(1)
    run_fit(landmarks, model, out, fit)


def dense_model_json(dense: Path, out: Path) -> Path:
    """The run's model.json with a dense embedding (what ``flame.dense_embedding`` records)."""
    from facedyn.flame.head_model import describe_flame_model

    info = json.loads(Path(MODEL).read_text())
    describe_flame_model(
        info["model"],
        info["landmark_embedding"],
        out,
        n_shape=info["n_shape"],
        n_expr=info["n_expr"],
        yaw_sign=info["yaw_sign"],
        synthetic=info["synthetic"],
        dense_embedding=dense,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--oracle-sigma", type=float, default=0.01)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--solver", choices=["adam", "lm"], default=None, help="fit.solver (default: the schema's)"
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the drawn detector error")
    ap.add_argument(
        "--dense-embedding",
        type=Path,
        default=DENSE,
        help="dense embedding for the '(c) mediapipe + dense points' row "
        "(default: the synthetic head's, when a run has measured it)",
    )
    args = ap.parse_args()
    detected = [Path(p) for p in sorted(glob.glob("results/landmarks/*/*.parquet"))]
    detected = detected[: args.videos]
    if not detected or not TRUTH.is_dir():
        raise SystemExit("needs the default run's landmarks and cohort: snakemake --cores 2")
    fit = default_fit_settings()
    if args.solver:
        fit["solver"] = args.solver
    error = measure_detector_error(detected)
    results: dict[str, Any] = {
        "videos": len(detected),
        "fit": fit,
        "dlib_error": {k: float(np.median(v)) for k, v in error.items()},
    }
    rng = np.random.default_rng(args.seed)
    modes = head_expression_modes(json.loads(Path(MODEL).read_text())["model"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        truth_lmk = [
            with_true_landmarks(
                p,
                layout.frame_table(TRUTH, p.parent.name, p.stem),
                root / "lmk" / p.parent.name / p.name,
            )
            for p in detected
        ]
        noisy_lmk = [
            noisy_true_landmark_table(p, root / "noisy" / p.parent.name / p.name, error, rng)
            for p in detected
        ]
        variants = {
            "(a) true landmarks": (truth_lmk, fit, MODEL),
            f"(a) true landmarks, landmark_sigma {args.oracle_sigma}": (
                truth_lmk,
                {**fit, "landmark_sigma": args.oracle_sigma},
                MODEL,
            ),
            "(b) true landmarks + dlib-like error": (noisy_lmk, fit, MODEL),
            "(c) dlib": (detected, fit, MODEL),
        }
        if importlib.util.find_spec("mediapipe") is not None:
            from facedyn.face.mediapipe_backend import MediaPipeBackend

            backend = MediaPipeBackend()
            mp_lmk = [
                mediapipe_table(p, root / "mp" / p.parent.name / p.name, backend) for p in detected
            ]
            backend.close()
            variants["(c) mediapipe"] = (mp_lmk, fit, MODEL)
            if args.dense_embedding.is_file():
                dense_model = str(dense_model_json(args.dense_embedding, root / "model_dense.json"))
                variants["(c) mediapipe + dense points"] = (mp_lmk, fit, dense_model)
        for name, (inputs, settings, model) in variants.items():
            slug = "".join(c if c.isalnum() else "_" for c in name)
            outs = [root / slug / p.parent.name / p.name for p in inputs]
            start = time.perf_counter()
            with ProcessPoolExecutor(args.workers) as pool:
                list(
                    pool.map(
                        _fit,
                        [
                            (str(i), str(o), settings, model)
                            for i, o in zip(inputs, outs, strict=True)
                        ],
                    )
                )
            seconds = time.perf_counter() - start
            _, _, summary = cohort_quality(
                [(o, layout.frame_table(TRUTH, o.parent.name, o.stem)) for o in outs], modes=modes
            )
            summary["seconds_per_video"] = seconds * args.workers / len(outs)
            results[name] = summary
    print(
        "| landmarks | expression r, dominant modes (median) | "
        "expression r, dominant components (median) | per component | "
        "jaw opening r (median, IQR) | shape RMSE (sd) | NME median | s per video |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in variants:
        s = results[name]
        comps = ", ".join(
            f"{NAMES.get(c, c)} {r:.2f}" for c, r in s["expression_r_by_component"].items()
        )
        lo, hi = s["jaw_open_r_iqr"]
        print(
            f"| {name} | {s['expression_mode_r_median']:.2f} | "
            f"{s['expression_r_median']:.2f} | {comps} | "
            f"{s['jaw_open_r_median']:.2f} ({lo:.2f}-{hi:.2f}) | "
            f"{s['shape_rmse_median']:.2f} | {s['nme_median']:.3f} | "
            f"{s['seconds_per_video']:.1f} |"
        )
    atomic_write_json("results/analysis/fit_quality.json", results)


if __name__ == "__main__":
    main()
