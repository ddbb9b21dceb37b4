"""Small faces and face-free video: detection rate, NME and false detections by face size.

The landmark stage (`facedyn.face.extract.extract_landmarks`, dlib) runs, one thread per
process, on

* the cohort's videos (default: the embedded default's first ``--videos``) downscaled so that
  the median inter-ocular distance (outer eye corners, the truth's) is each of ``--iod``
  pixels, and at full size: detection rate (share of sampled frames with a face), NME
  against the equally scaled true landmarks, frames per second per core (CPU time);
* face-free videos made from installed photos (`facedyn.synthetic.probe_videos`: a camera
  panning over each of ``--scenes`` photos, and drifting textures) at 320x240 and 176x144:
  the share of sampled frames with a "face" (false detections) and the videos' statuses;

each with the detector settings of the config schema (``default``) and, for comparison,
with a fixed upsampling of 0 or 1, dlib's own score threshold (0) and landmarks predicted on
the frame itself (tracks are confirmed by a second detection in all three). Prints markdown tables (those in
docs/performance.md) and writes ``results/analysis/low_resolution.json``.

    python analysis/low_resolution.py [resources/synthetic/default] [--videos 6]
        [--iod 40 30 25 20] [--scenes 20] [--seconds 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
import pandas as pd
import yaml

from facedyn.atomic import atomic_write_json
from facedyn.face.backends import DlibBackend
from facedyn.face.extract import extract_landmarks, landmarks_array
from facedyn.face.legibility import frame_errors
from facedyn.synthetic import layout
from facedyn.synthetic.probe_videos import (
    downscale_video,
    drifting_texture_frames,
    panning_frames,
    scene_images,
    write_video,
)

FPS = 15.0
FACE_FREE_SIZES = ((320, 240), (176, 144))


def schema_dlib_settings() -> dict[str, Any]:
    schema = yaml.safe_load(Path("workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]["landmarks"]["properties"]["dlib"]["properties"]
    return {k: v["default"] for k, v in props.items()}


def settings_variants() -> dict[str, dict[str, Any]]:
    """The schema's settings, and two without its choices: dlib's own threshold (score 0),
    no upsampling or always one, landmarks on the frame itself."""
    default = schema_dlib_settings()
    plain = {**default, "min_score": 0.0, "min_predictor_px": 0}
    return {
        "default": default,
        "upsample 0, score 0": {**plain, "upsample": 0},
        "upsample 1, score 0": {**plain, "upsample": 1},
    }


def _measure(job: tuple[str, dict[str, Any], str | None, float]) -> dict[str, Any]:
    """One video with one setting: detection, NME against the scaled truth, CPU time."""
    video, settings, truth_path, factor = job
    cv2.setNumThreads(1)
    backend = DlibBackend(**settings)
    c0 = time.process_time()
    df, meta = extract_landmarks(video, backend, FPS)
    cpu = time.process_time() - c0
    out = {
        "frames": len(df),
        "detected": int(df["detected"].sum()),
        "cpu_s": cpu,
        "status": meta["status"],
        "face_px": meta["face_px_median"],
    }
    if truth_path is not None:
        truth = pd.read_parquet(truth_path)
        out["nme"] = frame_errors(df, truth, factor).tolist()
    return out


def _downscaled(args: tuple[str, str, float]) -> str:
    src, dst, factor = args
    cv2.setNumThreads(1)
    return str(downscale_video(src, dst, factor) if factor < 1 else src)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="resources/synthetic/default", type=Path)
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--iod", type=float, nargs="+", default=[40, 30, 25, 20])
    ap.add_argument("--scenes", type=int, default=20)
    ap.add_argument("--textures", type=int, default=4, help="drifting textures per frame size")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each face-free video")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sessions_path = layout.sessions_table(args.root)
    if not sessions_path.is_file():
        raise SystemExit(f"needs a generated cohort at {args.root}: snakemake --cores 2")
    sessions = pd.read_parquet(sessions_path).head(args.videos)
    variants = settings_variants()
    results: dict[str, Any] = {"settings": variants, "fps": FPS, "cohort": {}, "face_free": {}}
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(args.workers) as pool:
        root = Path(tmp)
        # cohort videos at each inter-ocular distance
        scaled: list[tuple[str, str, float, str]] = []  # (size label, video, factor, truth)
        downscale_jobs = []
        for row in sessions.itertuples():
            video = args.root / row.session_id / "processed" / f"{row.speaker_id}.mp4"
            truth = layout.frame_table(layout.frames_dir(args.root), row.session_id, row.speaker_id)
            lmk = landmarks_array(pd.read_parquet(truth))
            iod = float(np.nanmedian(np.linalg.norm(lmk[:, 36] - lmk[:, 45], axis=-1)))
            for target in [None, *args.iod]:
                factor = 1.0 if target is None else target / iod
                label = "full size" if target is None else f"{target:g} px"
                dst = root / f"{label.replace(' ', '_')}_{row.session_id}_{row.speaker_id}.mp4"
                downscale_jobs.append((str(video), str(dst), factor))
                scaled.append((label, str(dst if factor < 1 else video), factor, str(truth)))
        list(pool.map(_downscaled, downscale_jobs))
        jobs = [
            (video, settings, truth, factor)
            for _, video, factor, truth in scaled
            for settings in variants.values()
        ]
        keys = [(label, name) for label, *_ in scaled for name in variants]
        for (label, name), res in zip(keys, pool.map(_measure, jobs), strict=True):
            results["cohort"].setdefault(label, {}).setdefault(name, []).append(res)
        # face-free videos
        n_frames = round(args.seconds * 30)
        scenes = list(scene_images().items())[: args.scenes]
        free: list[tuple[str, str]] = []  # (frame width, video)
        for size in FACE_FREE_SIZES:
            for name, image in scenes:
                path = root / f"scene_{name}_{size[0]}.mp4"
                write_video(path, panning_frames(image, size, n_frames, rng))
                free.append((str(size[0]), str(path)))
            for k in range(args.textures):
                path = root / f"texture_{k}_{size[0]}.mp4"
                write_video(path, drifting_texture_frames(size, n_frames, rng))
                free.append((str(size[0]), str(path)))
        jobs = [(video, settings, None, 1.0) for _, video in free for settings in variants.values()]
        keys = [(width, name) for width, _ in free for name in variants]
        for (width, name), res in zip(keys, pool.map(_measure, jobs), strict=True):
            results["face_free"].setdefault(width, {}).setdefault(name, []).append(res)
    print_tables(results, variants, len(sessions))
    atomic_write_json("results/analysis/low_resolution.json", results)


def _totals(runs: list[dict[str, Any]]) -> tuple[int, int, float]:
    """Sampled frames, frames with a face and frames per CPU second over ``runs``."""
    frames = sum(r["frames"] for r in runs)
    return frames, sum(r["detected"] for r in runs), frames / sum(r["cpu_s"] for r in runs)


def print_tables(results: dict[str, Any], variants: dict[str, Any], n_videos: int) -> None:
    print(
        f"| face size ({n_videos} cohort videos) | setting | detection | "
        "NME median | frames/s per core |"
    )
    print("|---|---|---|---|---|")
    for label, by_setting in results["cohort"].items():
        for name in variants:
            frames, detected, fps = _totals(by_setting[name])
            errors = np.concatenate([r["nme"] for r in by_setting[name]] + [[np.nan]])
            print(
                f"| {label} | {name} | {detected / frames:.1%} | "
                f"{np.nanmedian(errors) if detected else np.nan:.3f} | {fps:.0f} |"
            )
    print()
    print(
        "| face-free videos | setting | videos | frames with a false face | statuses | "
        "frames/s per core |"
    )
    print("|---|---|---|---|---|---|")
    for width, by_setting in results["face_free"].items():
        for name in variants:
            frames, detected, fps = _totals(by_setting[name])
            statuses = pd.Series([r["status"] for r in by_setting[name]]).value_counts()
            print(
                f"| width {width} | {name} | {len(by_setting[name])} | {detected} of {frames} "
                f"({detected / frames:.2%}) | {statuses.to_dict()} | {fps:.0f} |"
            )


if __name__ == "__main__":
    main()
