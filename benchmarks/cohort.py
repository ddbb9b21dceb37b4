"""Quality and speed of a generated synthetic cohort.

Reads a cohort written by `rule synthesize_cohort` (default: the embedded default's) and
reports: generation time and frames/s (from cohort.json), the share of sampled frames in which
dlib finds the face, and the normalised mean error (inter-ocular) of dlib's 68 landmarks
against the true projected landmarks. Prints a Markdown table for docs/performance.md. With ``--render`` it times instead, on one
core, what each synthetic frame costs: posing the render mesh (linear blend skinning and
projection, in chunks as the generator does), drawing it (background, normals for the shading,
z-buffer, texturing) and
writing it (sensor noise, colour conversion, mp4v encoding), at the default 320x240.

    python benchmarks/cohort.py [resources/synthetic/default] [--every 10]
    python benchmarks/cohort.py --render [--frames 900]
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
from facedyn.face.ibug import nme
from facedyn.synthetic import layout


def render_timings(n_frames: int, width: int = 320, height: int = 240) -> list[tuple[str, str]]:
    """Per-frame cost of the generator's stages on one core (ms), on a moving default head."""
    import tempfile

    import torch

    from facedyn.flame.camera import project
    from facedyn.flame.model import FLAME
    from facedyn.flame.synthetic import build_synthetic_head
    from facedyn.synthetic.appearance import load_portraits
    from facedyn.synthetic.generate import RENDER_CHUNK
    from facedyn.synthetic.scene import HeadRenderer, build_render_mesh, render_model

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    arrays, emb, _ = build_synthetic_head(100, 50)
    head = FLAME(arrays, 100, 50, embedding=emb)
    mesh = build_render_mesh(arrays, emb)
    model = render_model(mesh, 100, 50)
    rng = np.random.default_rng(0)
    t = np.arange(n_frames) / 30.0
    shape = torch.zeros(1, 100)
    expr = torch.zeros(n_frames, 50)
    expr[:, 0] = torch.from_numpy(1.5 + 1.5 * np.sin(2 * np.pi * 0.3 * t))
    expr[:, 5] = torch.from_numpy(np.clip(8 * np.sin(2 * np.pi * 0.25 * t) - 6, 0, 2.5))
    pose = torch.zeros(n_frames, 15)
    pose[:, 1] = torch.from_numpy(0.2 * np.sin(2 * np.pi * 0.2 * t))
    pose[:, 6] = torch.from_numpy(np.clip(0.25 * np.sin(2 * np.pi * 4.5 * t), 0, None))
    cx, cy = (width - 1) / 2, (height - 1) / 2
    with torch.no_grad():
        centre = head(shape)[0].mean(0)
        trans = torch.tensor([-centre[0], -centre[1], -centre[2] - 0.45])
        start = time.perf_counter()
        screens, depths, lmks, cams = [], [], [], []
        for lo in range(0, n_frames, RENDER_CHUNK):
            hi = min(n_frames, lo + RENDER_CHUNK)
            s, e, p = shape.expand(hi - lo, -1), expr[lo:hi], pose[lo:hi]
            verts = model(s, e, p)
            tr = trans.expand(hi - lo, 3)
            screens.append(project(verts, tr, 350.0, cx, cy).numpy())
            cams.append((verts + trans).numpy())
            depths.append(-cams[-1][..., 2])
            lmks.append(project(head.landmarks(s, e, p), tr, 350.0, cx, cy).numpy())
        pose_ms = 1000 * (time.perf_counter() - start) / n_frames
        neutral_verts = model(shape)
        neutral = project(neutral_verts, trans[None], 350.0, cx, cy)[0].numpy()
        neutral_cam = (neutral_verts[0] + trans).numpy()
        neutral_lmk = project(head.landmarks(shape), trans[None], 350.0, cx, cy)[0].numpy()
    screen, depth, lmk, cam = (np.concatenate(a) for a in (screens, depths, lmks, cams))
    portrait = load_portraits()[0]
    start = time.perf_counter()
    renderer = HeadRenderer(
        mesh, neutral, neutral_lmk, portrait, width, height, neutral_vertices=neutral_cam
    )
    setup_ms = 1000 * (time.perf_counter() - start)
    renderer.render(screen[0], depth[0], lmk[0], cam[0])  # compiled (or loaded from the cache)
    frames = []
    start = time.perf_counter()
    for f in range(n_frames):
        frames.append(renderer.render(screen[f], depth[f], lmk[f], cam[f]))
    draw_ms = 1000 * (time.perf_counter() - start) / n_frames
    bank = rng.normal(0, 2.0, (16, height, width, 3)).astype(np.int16)
    with tempfile.TemporaryDirectory() as tmp:
        writer = cv2.VideoWriter(
            str(Path(tmp) / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (width, height)
        )
        start = time.perf_counter()
        for f, frame in enumerate(frames):
            noisy = np.clip(frame.astype(np.int16) + bank[f % 16], 0, 255).astype(np.uint8)
            writer.write(cv2.cvtColor(noisy, cv2.COLOR_RGB2BGR))
        writer.release()
        write_ms = 1000 * (time.perf_counter() - start) / n_frames
    return [
        ("frames timed", f"{n_frames} at {width}x{height}, one core"),
        (
            "render-mesh vertices / faces",
            f"{len(mesh.arrays.v_template):,} / {len(mesh.arrays.faces):,}",
        ),
        ("pose (skinning + projection), ms/frame", f"{pose_ms:.2f}"),
        ("**draw (background, normals, z-buffer, texturing), ms/frame**", f"**{draw_ms:.2f}**"),
        ("write (noise + encode), ms/frame", f"{write_ms:.2f}"),
        ("total, ms/frame", f"{pose_ms + draw_ms + write_ms:.2f}"),
        ("texture set-up per video, ms", f"{setup_ms:.0f}"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="resources/synthetic/default", type=Path)
    ap.add_argument("--every", type=int, default=10, help="sample every Nth frame")
    ap.add_argument("--render", action="store_true", help="time the renderer instead")
    ap.add_argument("--frames", type=int, default=900, help="frames to time with --render")
    args = ap.parse_args()
    if args.render:
        print("| synthetic frame, one core | |\n|---|---|")
        for name, value in render_timings(args.frames):
            print(f"| {name} | {value} |")
        return
    summary = json.loads(layout.cohort_file(args.root).read_text())
    sessions = pd.read_parquet(layout.sessions_table(args.root))
    detector = DlibBackend()
    found, total, errors = 0, 0, []
    start = time.perf_counter()
    for row in sessions.itertuples():
        video = args.root / row.session_id / "processed" / f"{row.speaker_id}.mp4"
        truth = pd.read_parquet(
            layout.frame_table(layout.frames_dir(args.root), row.session_id, row.speaker_id)
        )
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
                    errors.append(float(nme(faces[0].landmarks, target[frame_index])))
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
