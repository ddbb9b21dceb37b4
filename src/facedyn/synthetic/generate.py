"""The embedded default dataset: a synthetic, CANDOR-shaped cohort with ground truth.

Speakers have a head shape (identity coefficients of the procedural head) and a dynamic
signature (:mod:`facedyn.synthetic.behaviour`). Conversations pair two speakers; every
speaker takes part in ``sessions_per_speaker`` conversations. Each participant's video
draws the posed head as a textured, depth-tested 3D mesh (:mod:`facedyn.synthetic.scene`)
whose skin is a real face photograph shipped inside an installed package (one per speaker by
default, :mod:`facedyn.synthetic.appearance`); lips and lids stop at contact
(:mod:`facedyn.synthetic.contact`).

On disk (CANDOR's layout, so the CANDOR indexer reads it)::

    <root>/<conversation_id>/metadata.json            id, createdAt, speakers [{user_id, channel}]
    <root>/<conversation_id>/processed/<user_id>.mp4  one participant, 320x240, 30 fps
    <root>/<conversation_id>/processed/channel_map.json
    <root>/<conversation_id>/processed/<conversation_id>.mp4   side by side (optional, ignored)
    <root>/truth/...                                   ground truth (validation, figures, `source: truth`)

``truth/`` holds ``speakers.parquet`` (signature parameters, instability, shape),
``sessions.parquet`` (photo, camera, lighting, mood, shape drift) and
``frames/<conversation_id>/<user_id>.parquet`` (:mod:`facedyn.synthetic.layout`; per-frame shape, expression, jaw, pose,
camera and the true projected 68 landmarks), aligned frame by frame with the videos.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import uuid
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch

from facedyn.atomic import atomic_write, atomic_write_json
from facedyn.flame.camera import project
from facedyn.flame.io import load_flame_arrays
from facedyn.flame.model import FLAME, FLAMELandmarks, load_flame
from facedyn.runtime import provenance
from facedyn.synthetic import layout
from facedyn.synthetic.appearance import Lighting, Portrait, face_pool, load_portraits
from facedyn.synthetic.behaviour import (
    ExpressionRoles,
    sample_signatures,
    session_parameters,
    simulate_conversation,
)
from facedyn.synthetic.contact import enforce_contacts
from facedyn.synthetic.scene import HeadRenderer, RenderMesh, build_render_mesh, render_model
from facedyn.tables import write_table

log = logging.getLogger(__name__)

#: Independent random streams (so e.g. the photo draw cannot depend on speaker draws).
STREAM_SPEAKERS, STREAM_PAIRING, STREAM_SESSIONS, STREAM_PHOTOS, STREAM_RENDER, STREAM_FACES = (
    range(6)
)
NOISE_BANK = 16  # pre-drawn sensor-noise frames per video (drawing per frame is slow)
#: Largest |identity coefficient| of a session's face: beyond about 2.5 sd the stand-in head's
#: faces (a long pointed chin, a narrow jaw) are ones no person has, and a detector trained on
#: people cannot read them.
SHAPE_LIMIT = 2.5
RENDER_CHUNK = 150  # frames posed at once (bounds the memory of the posed meshes)


@dataclass(frozen=True)
class CohortConfig:
    """Knobs of the synthetic cohort (``dataset.synthetic.*`` in the config)."""

    name: str = "default"
    n_speakers: int = 32
    sessions_per_speaker: int = 3
    duration_s: float = 30.0
    fps: float = 30.0
    width: int = 320
    height: int = 240
    signature_strength: float = 2.0
    instability: tuple[float, float] = (0.05, 2.0)
    shape_sd: float = 1.0
    shape_drift: float = 1.0
    n_shape: int = 20
    focal_px: tuple[float, float] = (280.0, 420.0)
    distance_m: tuple[float, float] = (0.38, 0.55)
    pose_scale: tuple[float, float] = (0.6, 1.4)
    noise_sd: tuple[float, float] = (1.0, 4.0)
    combined_video: bool = False
    portrait: str = "speaker"  # one portrait per speaker, or a new one every "session"
    head_shape: str = "speaker"  # one head shape per speaker, or a new one every "session"
    n_faces: int | None = None  # photographed faces drawn from (with their mirrors); None: all
    workers: int = 1
    seed: int = 0

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> CohortConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"unknown dataset.synthetic keys: {sorted(unknown)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
        out = cls(**values)
        out.validate()
        return out

    def validate(self) -> None:
        if self.n_speakers < 2 or self.n_speakers % 2:
            raise ValueError(
                f"dataset.synthetic.n_speakers must be even and >= 2, got {self.n_speakers}"
            )
        if self.sessions_per_speaker < 1:
            raise ValueError("dataset.synthetic.sessions_per_speaker must be >= 1")
        if self.portrait not in ("speaker", "session"):
            raise ValueError(
                f"dataset.synthetic.portrait must be 'speaker' or 'session', got {self.portrait!r}"
            )
        if self.head_shape not in ("speaker", "session"):
            raise ValueError(
                "dataset.synthetic.head_shape must be 'speaker' or 'session', "
                f"got {self.head_shape!r}"
            )
        if self.n_faces is not None and self.n_faces < 1:
            raise ValueError(f"dataset.synthetic.n_faces must be >= 1 or null, got {self.n_faces}")
        if self.duration_s * self.fps < 2:
            raise ValueError("dataset.synthetic.duration_s * fps must give at least 2 frames")


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def make_speaker_ids(n: int, rng: np.random.Generator) -> list[str]:
    """CANDOR-like 24-character hex user ids. The first looks like a number in scientific
    notation (all digits and one 'e'), as some real CANDOR ids do, to keep every stage honest
    about ids being strings."""
    ids = ["".join(rng.choice(list("0123456789abcdef"), 24)) for _ in range(n)]
    digits = "".join(rng.choice(list("0123456789"), 23))
    ids[0] = digits[:8] + "e" + digits[8:]
    return ids


def pair_conversations(
    speakers: list[str], sessions_per_speaker: int, rng: np.random.Generator, tries: int = 200
) -> list[tuple[str, str]]:
    """Rounds of random perfect matchings, avoiding repeated partners where possible."""
    seen: set[frozenset[str]] = set()
    pairs: list[tuple[str, str]] = []
    for _ in range(sessions_per_speaker):
        best: list[tuple[str, str]] | None = None
        for _ in range(tries):
            perm = list(rng.permutation(speakers))
            cand = [(perm[i], perm[i + 1]) for i in range(0, len(perm), 2)]
            repeats = sum(frozenset(p) in seen for p in cand)
            if best is None or repeats < best[1]:
                best = (cand, repeats)  # type: ignore[assignment]
            if repeats == 0:
                break
        chosen = best[0]  # type: ignore[index]
        seen.update(frozenset(p) for p in chosen)
        pairs.extend(chosen)
    return pairs


def head_roles(components_json: str | os.PathLike[str]) -> tuple[ExpressionRoles, list[str]]:
    """Expression roles and names from the synthetic head's ``components.json``."""
    info = json.loads(Path(components_json).read_text())
    names = [c if isinstance(c, str) else c["name"] for c in info["expression"]]
    roles = ExpressionRoles.from_names(
        names,
        blink_closed=float(info.get("blink_closed", 2.5)),
        jaw_open_sign=float(info.get("jaw_open_sign", 1.0)),
    )
    return roles, names


# --------------------------------------------------------------------------- planning


def plan_cohort(cfg: CohortConfig, n_head_shape: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Speakers (signatures, shapes) and sessions (who, with whom, look), without rendering."""
    rng = _rng(cfg.seed, STREAM_SPEAKERS)
    ids = make_speaker_ids(cfg.n_speakers, rng)
    speakers = sample_signatures(ids, cfg.signature_strength, cfg.instability, rng)
    n_shape = min(cfg.n_shape, n_head_shape)
    shapes = np.clip(
        cfg.shape_sd * rng.standard_normal((cfg.n_speakers, n_shape)), -SHAPE_LIMIT, SHAPE_LIMIT
    )
    for k in range(n_shape):
        speakers[f"shape_{k:03d}"] = shapes[:, k]

    pairs = pair_conversations(ids, cfg.sessions_per_speaker, _rng(cfg.seed, STREAM_PAIRING))
    srng, prng = _rng(cfg.seed, STREAM_SESSIONS), _rng(cfg.seed, STREAM_PHOTOS)
    # A person keeps their face from call to call (portrait: speaker), as in CANDOR: the
    # detector's texture-dependent errors are then a per-speaker constant, like a real
    # tracker's, instead of a per-session jump in the apparent shape that every speaker
    # would share regardless of instability. Drawn from the photo stream only, so the
    # assignment does not change with any speaker setting.
    speakers["photo_index"] = prng.integers(1 << 30, size=len(ids))
    # head_shape: session draws every session's face afresh (the appearance-swap control),
    # from a stream of its own so the speakers' signatures and photos stay as they are.
    frng = _rng(cfg.seed, STREAM_FACES)
    conv_rng = _rng(cfg.seed, STREAM_PAIRING, 1)
    rows = []
    for c, (a, b) in enumerate(pairs):
        conv = str(uuid.UUID(bytes=conv_rng.bytes(16), version=4))
        for channel, (me, other) in zip("LR", ((a, b), (b, a)), strict=True):
            inst = float(speakers.loc[me, "instability"])
            row = {
                "session_id": conv,
                "speaker_id": me,
                "partner_id": other,
                "channel": channel,
                "conversation_index": c,
                # reduced modulo the pool size when rendering
                "photo_index": (
                    int(speakers.loc[me, "photo_index"])
                    if cfg.portrait == "speaker"
                    else int(prng.integers(1 << 30))
                ),
                "focal_px": float(srng.uniform(*cfg.focal_px)),
                "distance_m": float(srng.uniform(*cfg.distance_m)),
                "offset_x_m": float(srng.normal(0, 0.01)),
                "offset_y_m": float(srng.normal(0, 0.008)),
                "pose_scale": float(srng.uniform(*cfg.pose_scale)),
                "mood_smile": float(srng.normal(0, 0.3)),
                "mood_brow": float(srng.normal(0, 0.2)),
                "contrast": float(srng.uniform(0.8, 1.15)),
                "brightness": float(srng.uniform(-0.08, 0.08)),
                "gamma": float(srng.uniform(0.8, 1.25)),
                "wb_r": float(srng.uniform(0.9, 1.1)),
                "wb_b": float(srng.uniform(0.9, 1.1)),
                "noise_sd": float(srng.uniform(*cfg.noise_sd)),
            }
            drift = cfg.shape_drift * inst * srng.standard_normal(n_shape)
            own = speakers.loc[me, [f"shape_{k:03d}" for k in range(n_shape)]].to_numpy(float)
            if cfg.head_shape == "session":
                # A new face: the session's shape is a fresh draw from the population, and
                # its "drift" is the step from the speaker's nominal shape to it.
                drift = cfg.shape_sd * frng.standard_normal(n_shape) - own
            # The session's apparent shape stays within the head's plausible range.
            drift = np.clip(own + drift, -SHAPE_LIMIT, SHAPE_LIMIT) - own
            row.update({f"shape_drift_{k:03d}": float(drift[k]) for k in range(n_shape)})
            row.update(session_parameters(speakers.loc[me], srng))
            rows.append(row)
    sessions = pd.DataFrame(rows)
    return speakers, sessions


# --------------------------------------------------------------------------- rendering


@dataclass
class _Worker:
    """Per-process state: head model and portrait pool, loaded once."""

    head: FLAMELandmarks
    flame: FLAME
    mesh: RenderMesh
    mesh_model: FLAME
    n_shape: int
    n_expr: int
    roles: ExpressionRoles
    portraits: list[Portrait]


_WORKER: _Worker | None = None


def _init_worker(model: str, embedding: str, components: str) -> None:
    global _WORKER
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    info = json.loads(Path(components).read_text())
    flame = load_flame(
        model,
        n_shape=int(info["n_shape"]),
        n_expr=int(info["n_expr"]),
        landmark_embedding=embedding,
        dtype=torch.float32,
    )
    roles, _ = head_roles(components)
    assert flame.embedding is not None
    mesh = build_render_mesh(load_flame_arrays(model), flame.embedding)
    _WORKER = _Worker(
        flame.landmark_model(),
        flame,
        mesh,
        render_model(mesh, flame.n_shape, flame.n_expr),
        flame.n_shape,
        flame.n_expr,
        roles,
        load_portraits(),
    )


def _video_writer(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"cannot open a video writer for {path} (OpenCV mp4v)")
    return writer


def _render_conversation(args: tuple[CohortConfig, str, list[dict[str, Any]], str]) -> list[str]:
    """Simulate and render both participants of one conversation; returns written paths."""
    cfg, root_s, rows, speakers_json = args
    assert _WORKER is not None
    w, root = _WORKER, Path(root_s)
    conv = rows[0]["session_id"]
    index = rows[0]["conversation_index"]
    rng = _rng(cfg.seed, STREAM_RENDER, index)
    speakers = json.loads(speakers_json)
    moods = [{"smile": r["mood_smile"], "brow": r["mood_brow"]} for r in rows]
    tracks = simulate_conversation(
        rows,
        moods,
        [r["pose_scale"] for r in rows],
        cfg.duration_s,
        cfg.fps,
        w.n_expr,
        w.roles,
        rng,
    )
    processed = root / conv / "processed"
    processed.mkdir(parents=True, exist_ok=True)
    n = tracks[0].expression.shape[0]
    frames_both = []
    written = []
    for row, track in zip(rows, tracks, strict=True):
        spk = row["speaker_id"]
        shape = np.zeros(w.n_shape)
        k = 0
        while f"shape_{k:03d}" in speakers[spk]:
            shape[k] = speakers[spk][f"shape_{k:03d}"] + row[f"shape_drift_{k:03d}"]
            k += 1
        # Lips and lids stop at contact (the summed processes may push them through).
        track.expression = enforce_contacts(w.head, shape, track.expression, track.jaw, w.roles)
        pose = np.zeros((n, 15))
        pose[:, 0:3] = track.rotation
        pose[:, 6:9] = track.jaw
        shape_t = torch.as_tensor(shape[None], dtype=torch.float32)
        cx, cy = (cfg.width - 1) / 2, (cfg.height - 1) / 2
        with torch.no_grad():
            neutral = w.head(shape_t, None, None)[0].mean(0).numpy()
            trans = torch.tensor(
                [
                    -neutral[0] + row["offset_x_m"],
                    -neutral[1] + row["offset_y_m"],
                    -neutral[2] - row["distance_m"],
                ],
                dtype=torch.float32,
            )
            lmk2 = np.empty((n, 68, 2), np.float32)
            screen = np.empty((n, len(w.mesh.arrays.v_template), 2), np.float32)
            depth = np.empty(screen.shape[:2], np.float32)
            camera = np.empty((*screen.shape[:2], 3), np.float32)  # for shading
            for lo in range(0, n, RENDER_CHUNK):
                hi = min(n, lo + RENDER_CHUNK)
                shapes = shape_t.expand(hi - lo, -1)
                expr_t = torch.as_tensor(track.expression[lo:hi], dtype=torch.float32)
                pose_t = torch.as_tensor(pose[lo:hi], dtype=torch.float32)
                tr = trans.expand(hi - lo, 3)
                lmk2[lo:hi] = project(
                    w.head(shapes, expr_t, pose_t), tr, row["focal_px"], cx, cy
                ).numpy()
                verts = w.mesh_model(shapes, expr_t, pose_t)
                screen[lo:hi] = project(verts, tr, row["focal_px"], cx, cy).numpy()
                camera[lo:hi] = (verts + trans).numpy()
                depth[lo:hi] = -camera[lo:hi, :, 2]
            # The texture is laid on at the neutral pose seen through this session's camera.
            neutral_verts = w.mesh_model(shape_t)
            neutral_screen = project(neutral_verts, trans[None], row["focal_px"], cx, cy)[0].numpy()
            neutral_camera = (neutral_verts[0] + trans).numpy()
            neutral_lmk = project(w.head(shape_t), trans[None], row["focal_px"], cx, cy)[0].numpy()
        pool = face_pool(w.portraits, cfg.n_faces)
        portrait = pool[row["photo_index"] % len(pool)]
        light = Lighting(
            row["contrast"], row["brightness"], row["gamma"], (row["wb_r"], 1.0, row["wb_b"])
        )
        renderer = HeadRenderer(
            w.mesh,
            neutral_screen,
            neutral_lmk,
            portrait,
            cfg.width,
            cfg.height,
            light,
            neutral_vertices=neutral_camera,
        )
        bank = rng.normal(0, row["noise_sd"], (NOISE_BANK, cfg.height, cfg.width, 3)).astype(
            np.int16
        )
        video = processed / f"{spk}.mp4"
        frames = []
        tmp = video.with_name(f".{video.stem}.tmp.mp4")
        writer = _video_writer(tmp, cfg.fps, (cfg.width, cfg.height))
        try:
            for f in range(n):
                frame = renderer.render(screen[f], depth[f], lmk2[f], camera[f])
                noisy = frame.astype(np.int16) + bank[rng.integers(NOISE_BANK)]
                frame = np.clip(noisy, 0, 255).astype(np.uint8)
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                if cfg.combined_video:
                    frames.append(frame)
        finally:
            writer.release()
        os.replace(tmp, video)
        written.append(str(video))
        frames_both.append(frames)
        _write_truth(root, row, track, shape, pose, trans.numpy(), lmk2, cfg)
    if cfg.combined_video:
        combined = processed / f"{conv}.mp4"
        tmp = combined.with_name(f".{combined.stem}.tmp.mp4")
        writer = _video_writer(tmp, cfg.fps, (2 * cfg.width, cfg.height))
        for fl, fr in zip(*frames_both, strict=True):
            writer.write(cv2.cvtColor(np.concatenate([fl, fr], 1), cv2.COLOR_RGB2BGR))
        writer.release()
        os.replace(tmp, combined)
    meta = {
        "id": conv,
        "createdAt": 1_600_000_000_000 + 60_000 * index,
        "speakers": [{"user_id": r["speaker_id"], "channel": r["channel"]} for r in rows],
        "synthetic": True,
    }
    atomic_write_json(root / conv / "metadata.json", meta)
    atomic_write_json(processed / "channel_map.json", {r["channel"]: r["speaker_id"] for r in rows})
    return written


def _write_truth(
    root: Path,
    row: Mapping[str, Any],
    track: Any,
    shape: np.ndarray,
    pose: np.ndarray,
    trans: np.ndarray,
    lmk2: np.ndarray,
    cfg: CohortConfig,
) -> None:
    n = len(pose)
    cols: dict[str, Any] = {
        "frame": np.arange(n),
        "time_s": np.arange(n) / cfg.fps,
        "speaking": track.speaking,
    }
    cols.update({f"shape_{k:03d}": np.full(n, shape[k]) for k in range(len(shape))})
    cols.update({f"expr_{k:03d}": track.expression[:, k] for k in range(track.expression.shape[1])})
    cols.update({f"jaw_{k}": pose[:, 6 + k] for k in range(3)})
    cols.update({f"rot_{k}": pose[:, k] for k in range(3)})
    cols.update(
        {
            "tx": np.full(n, trans[0]),
            "ty": np.full(n, trans[1]),
            "tz": np.full(n, trans[2]),
            "focal_px": np.full(n, row["focal_px"]),
        }
    )
    cols.update({f"lx{k:02d}": lmk2[:, k, 0] for k in range(68)})
    cols.update({f"ly{k:02d}": lmk2[:, k, 1] for k in range(68)})
    path = layout.frame_table(layout.frames_dir(root), row["session_id"], row["speaker_id"])
    write_table(
        pd.DataFrame(cols),
        path,
        {
            "session_id": row["session_id"],
            "speaker_id": row["speaker_id"],
            "fps": cfg.fps,
            "width": cfg.width,
            "height": cfg.height,
        },
    )


def generate_cohort(
    root: str | os.PathLike[str],
    cfg: CohortConfig,
    head_model: str,
    head_embedding: str,
    head_components: str,
    config: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Generate the whole cohort under ``root``; returns the sessions table.

    Deterministic given ``cfg.seed``: every conversation has its own random stream, so the
    result does not depend on ``cfg.workers`` or the order in which conversations finish.
    """
    root = Path(root)
    if cfg.n_faces is not None:
        face_pool(load_portraits(), cfg.n_faces)  # too few faces: fail before any rendering
    info = json.loads(Path(head_components).read_text())
    speakers, sessions = plan_cohort(cfg, int(info["n_shape"]))
    speakers_json = json.dumps(speakers.to_dict(orient="index"))
    jobs = [
        (cfg, str(root), grp.sort_values("channel").to_dict(orient="records"), speakers_json)
        for _, grp in sessions.groupby("conversation_index", sort=True)
    ]
    init = (head_model, head_embedding, head_components)
    log.info(
        "rendering %d conversations (%d videos) with %d worker(s)",
        len(jobs),
        len(sessions),
        cfg.workers,
    )
    if cfg.workers > 1:
        # "spawn", not fork: forking a process whose torch/OpenMP threads are running can
        # deadlock the children.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            cfg.workers, mp_context=ctx, initializer=_init_worker, initargs=init
        ) as pool:
            for k, paths in enumerate(pool.map(_render_conversation, jobs), 1):
                log.info("[%d/%d] %s", k, len(jobs), ", ".join(Path(p).name for p in paths))
    else:
        _init_worker(*init)
        for k, job in enumerate(jobs, 1):
            paths = _render_conversation(job)
            log.info("[%d/%d] %s", k, len(jobs), ", ".join(Path(p).name for p in paths))
    meta = {"cohort_config": asdict(cfg), "provenance": provenance(config)}
    write_table(speakers.reset_index(), layout.speakers_table(root), meta)
    write_table(sessions, layout.sessions_table(root), meta)
    atomic_write(
        layout.truth_dir(root) / "README.txt",
        lambda p: p.write_text(
            "Ground truth of the synthetic cohort. No pipeline stage reads this folder except\n"
            "validation and figures. Generated by facedyn.synthetic.generate.\n"
        ),
    )
    return sessions


def _clear_previous(root: Path) -> None:
    """Remove a previous cohort under ``root`` (only folders this generator wrote), so a
    changed configuration never leaves stale conversations for the indexer to find."""
    import shutil

    if not root.is_dir():
        return
    for child in root.iterdir():
        meta = child / "metadata.json"
        if child.is_dir() and meta.is_file():
            try:
                ours = json.loads(meta.read_text()).get("synthetic") is True
            except (OSError, ValueError):
                ours = False
            if ours:
                shutil.rmtree(child)
    shutil.rmtree(layout.truth_dir(root), ignore_errors=True)


def write_cohort(
    root: str | os.PathLike[str],
    synthetic: Mapping[str, Any],
    *,
    head_model: str,
    head_embedding: str,
    head_components: str,
    workers: int = 1,
    summary_path: str | os.PathLike[str] | None = None,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Generate the cohort described by ``dataset.synthetic`` and write its summary JSON.

    Returns the summary (counts, duration, settings), also written to ``summary_path``.
    """
    import time

    root = Path(root)
    cfg = CohortConfig.from_mapping({**synthetic, "workers": max(1, int(workers))})
    _clear_previous(root)
    start = time.perf_counter()
    sessions = generate_cohort(root, cfg, head_model, head_embedding, head_components, config)
    n_frames = round(cfg.duration_s * cfg.fps)
    summary = {
        "name": cfg.name,
        "synthetic": True,
        "n_speakers": cfg.n_speakers,
        "n_conversations": int(sessions["session_id"].nunique()),
        "n_videos": len(sessions),
        "frames_per_video": n_frames,
        "seconds": round(time.perf_counter() - start, 2),
        "settings": {k: v for k, v in asdict(cfg).items() if k != "workers"},
        "provenance": provenance(config),
    }
    log.info(
        "cohort %s: %d speakers, %d conversations, %d videos x %d frames in %.1f s",
        cfg.name,
        summary["n_speakers"],
        summary["n_conversations"],
        summary["n_videos"],
        n_frames,
        summary["seconds"],
    )
    if summary_path is not None:
        atomic_write_json(summary_path, summary)
    return summary
