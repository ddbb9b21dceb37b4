"""Where MediaPipe's face-mesh points sit on the synthetic head: its dense embedding.

MediaPipe's canonical face model (the mesh its 468 points are defined on) is not shipped in
its wheels, and the synthetic head is not FLAME, so there is no published correspondence to
reuse. It is measured instead, on renders whose geometry is known: a small calibration cohort
(its own seed, so none of its speakers, sessions or frames is one the pipeline later
evaluates) is rendered with the cohort's own renderer; on sampled frames the MediaPipe
backend places its points, and each point is traced back to the surface of the true posed
mesh (a depth-tested raster of the head's triangles gives the triangle under the point, the
point's barycentric coordinates in it follow from the projected corners). Each sample is
mapped to the head's template (same triangle, same barycentric coordinates), the samples of a
point are reduced to their median position, and that position is snapped to the nearest
point of the template surface: the embedding's triangle and barycentric coordinates.

Points that land on the head's surface in fewer than ``min_hit_rate`` of the frames (outside
the face, the lips' inner edge when the mouth opens, the iris, which sits on the eyeball)
are left out. The result is what a landmark embedding always is, the detector's reading of
where its points are on this head, measured once.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facedyn.flame.camera import project
from facedyn.flame.dense import DenseEmbedding, save_dense_embedding
from facedyn.flame.landmarks import load_landmark_embedding
from facedyn.flame.model import FLAME
from facedyn.synthetic import layout
from facedyn.synthetic.raster import BACK_BIT, rasterize
from facedyn.tables import read_table

log = logging.getLogger(__name__)

#: The calibration cohort: short videos of a few speakers, seeded apart from any run's cohort.
CALIBRATION_COHORT: dict[str, Any] = {
    "name": "dense_calibration",
    "n_speakers": 8,
    "sessions_per_speaker": 1,
    "duration_s": 8.0,
    "seed": 7919,
}
#: Surface points MediaPipe's face mesh has (the 10 iris points after them are on the eyeball).
N_SURFACE_POINTS = 468


def closest_barycentric(point: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Barycentric coordinates of the point of triangle ``tri`` (3, 3) closest to ``point``.

    Region tests of Ericson, *Real-Time Collision Detection*, 5.1.5.
    """
    a, b, c = tri
    ab, ac, ap = b - a, c - a, point - a
    d1, d2 = ab @ ap, ac @ ap
    if d1 <= 0 and d2 <= 0:
        return np.array([1.0, 0.0, 0.0])
    bp = point - b
    d3, d4 = ab @ bp, ac @ bp
    if d3 >= 0 and d4 <= d3:
        return np.array([0.0, 1.0, 0.0])
    vc = d1 * d4 - d3 * d2
    if vc <= 0 and d1 >= 0 and d3 <= 0:
        t = d1 / (d1 - d3)
        return np.array([1 - t, t, 0.0])
    cp = point - c
    d5, d6 = ab @ cp, ac @ cp
    if d6 >= 0 and d5 <= d6:
        return np.array([0.0, 0.0, 1.0])
    vb = d5 * d2 - d1 * d6
    if vb <= 0 and d2 >= 0 and d6 <= 0:
        t = d2 / (d2 - d6)
        return np.array([1 - t, 0.0, t])
    va = d3 * d6 - d5 * d4
    if va <= 0 and (d4 - d3) >= 0 and (d5 - d6) >= 0:
        t = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        return np.array([0.0, 1 - t, t])
    denom = 1.0 / (va + vb + vc)
    v, w = vb * denom, vc * denom
    return np.array([1 - v - w, v, w])


def snap_to_surface(
    points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, candidates: int = 40
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest surface point of a mesh for each of ``points`` (N, 3): (faces (N,), bary (N, 3)).

    Searches the ``candidates`` triangles whose centroids are nearest (the mesh is fine next
    to the distances involved).
    """
    centroids = vertices[faces].mean(1)
    out_f = np.zeros(len(points), np.int64)
    out_b = np.zeros((len(points), 3))
    for i, p in enumerate(points):
        best = np.inf
        for f in np.argsort(np.linalg.norm(centroids - p, axis=1))[:candidates]:
            bary = closest_barycentric(p, vertices[faces[f]])
            dist = float(np.linalg.norm(bary @ vertices[faces[f]] - p))
            if dist < best:
                best, out_f[i], out_b[i] = dist, f, bary
    return out_f, out_b


def _posed_frame(
    head: FLAME, row: Mapping[str, float], width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Screen positions (V, 2) and depths (V,) of the head's vertices in one truth frame."""
    dt = head.v_template.dtype

    def coeffs(prefix: str, n: int) -> torch.Tensor:
        return torch.tensor([[float(row.get(f"{prefix}{k:03d}", 0.0)) for k in range(n)]], dtype=dt)

    pose = torch.zeros(1, 15, dtype=dt)
    pose[0, :3] = torch.tensor([row["rot_0"], row["rot_1"], row["rot_2"]], dtype=dt)
    pose[0, 6:9] = torch.tensor([row["jaw_0"], row["jaw_1"], row["jaw_2"]], dtype=dt)
    trans = torch.tensor([[row["tx"], row["ty"], row["tz"]]], dtype=dt)
    with torch.no_grad():
        verts = head(coeffs("shape_", head.n_shape), coeffs("expr_", head.n_expr), pose)
        screen = project(verts, trans, float(row["focal_px"]), (width - 1) / 2, (height - 1) / 2)
        depth = -(verts + trans[:, None])[..., 2]
    return screen[0].numpy(), depth[0].numpy()


def surface_samples(
    head: FLAME, frames: list[tuple[np.ndarray, Mapping[str, float]]], backend: Any
) -> tuple[list[list[np.ndarray]], int]:
    """Template positions under each surface point, over frames (image, truth row) where the
    backend finds the face; also the number of such frames."""
    faces = head.faces.cpu().numpy().astype(np.int32)
    template = head.v_template.cpu().numpy().astype(np.float64)
    samples: list[list[np.ndarray]] = [[] for _ in range(N_SURFACE_POINTS)]
    seen = 0
    two_sided = np.zeros(len(faces), bool)
    for image, row in frames:
        found = backend.detect(image)
        if not found or found[0].dense is None:
            continue
        seen += 1
        h, w = image.shape[:2]
        screen, depth = _posed_frame(head, row, w, h)
        zbuf = np.full((h, w), np.inf, np.float32)
        face_id = np.full((h, w), -1, np.int32)
        bary_buf = np.zeros((h, w, 2), np.float32)
        rasterize(
            screen.astype(np.float32),
            depth.astype(np.float32),
            faces,
            two_sided,
            zbuf,
            face_id,
            bary_buf,
        )
        for k, (u, v) in enumerate(found[0].dense[:N_SURFACE_POINTS]):
            iu, iv = round(float(u)), round(float(v))
            if not (0 <= iu < w and 0 <= iv < h):
                continue
            f = int(face_id[iv, iu])
            if f < 0 or f & BACK_BIT:
                continue
            a, b, c = screen[faces[f]]
            edges = np.array([[b[0] - a[0], c[0] - a[0]], [b[1] - a[1], c[1] - a[1]]])
            if abs(np.linalg.det(edges)) < 1e-9:
                continue
            l1, l2 = np.linalg.solve(edges, np.array([u - a[0], v - a[1]]))
            bary = np.clip([1.0 - l1 - l2, l1, l2], 0.0, 1.0)
            samples[k].append((bary / bary.sum()) @ template[faces[f]])
    return samples, seen


def dense_embedding_from_samples(
    head: FLAME, samples: list[list[np.ndarray]], seen: int, min_hit_rate: float = 0.8
) -> DenseEmbedding:
    """The embedding: median template position of each well-sampled point, snapped."""
    keep = [k for k, s in enumerate(samples) if seen and len(s) >= min_hit_rate * seen]
    if not keep:
        raise RuntimeError(
            "no MediaPipe point landed on the head in enough frames: did the "
            "calibration renders show a face?"
        )
    medians = np.array([np.median(np.array(samples[k]), axis=0) for k in keep])
    faces = head.faces.cpu().numpy()
    tri, bary = snap_to_surface(medians, head.v_template.cpu().numpy().astype(np.float64), faces)
    return DenseEmbedding(faces=tri, bary=bary, landmark_indices=np.array(keep, np.int64))


def calibrate_dense_embedding(
    head_model: str | os.PathLike[str],
    head_embedding: str | os.PathLike[str],
    head_components: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    every_n_frames: int = 30,
    workers: int = 1,
    min_hit_rate: float = 0.8,
    cohort: Mapping[str, Any] | None = None,
) -> DenseEmbedding:
    """Render the calibration cohort, measure MediaPipe's points on it and write the embedding.

    Args:
        head_model, head_embedding, head_components: the synthetic head's files.
        out: the ``.npz`` to write (``facedyn.flame.dense`` format).
        every_n_frames: sample one video frame in this many.
        workers: rendering processes.
        min_hit_rate: keep points found on the head's surface in at least this share of frames.
        cohort: ``dataset.synthetic`` overrides of :data:`CALIBRATION_COHORT`.
    """
    from facedyn.face.mediapipe_backend import MediaPipeBackend
    from facedyn.face.video import read_all_frames
    from facedyn.flame.io import load_flame_arrays
    from facedyn.synthetic.generate import write_cohort

    arrays = load_flame_arrays(head_model)  # read once: its sizes and the model itself
    head = FLAME(
        arrays,
        n_shape=arrays.max_shape,
        n_expr=arrays.max_expr,
        embedding=load_landmark_embedding(head_embedding),
        dtype=torch.float64,
    )
    settings = {**CALIBRATION_COHORT, **(cohort or {})}
    backend = MediaPipeBackend(max_faces=1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_cohort(
            root,
            settings,
            head_model=str(head_model),
            head_embedding=str(head_embedding),
            head_components=str(head_components),
            workers=workers,
        )
        frames: list[tuple[np.ndarray, Mapping[str, float]]] = []
        for truth_path in sorted(layout.frames_dir(root).glob("*/*.parquet")):
            truth, _ = read_table(truth_path)
            video = root / truth_path.parent.name / "processed" / f"{truth_path.stem}.mp4"
            images = read_all_frames(video)
            for row in truth.iloc[::every_n_frames].to_dict("records"):
                if int(row["frame"]) < len(images):
                    frames.append((images[int(row["frame"])], row))
        samples, seen = surface_samples(head, frames, backend)
    backend.close()
    emb = dense_embedding_from_samples(head, samples, seen, min_hit_rate)
    emb.check(len(head.faces), N_SURFACE_POINTS)
    spread = [
        float(np.median(np.linalg.norm(np.array(samples[k]) - np.median(samples[k], 0), axis=1)))
        for k in emb.landmark_indices
    ]
    log.info(
        "dense embedding: %d of %d points from %d frames, median spread %.1f mm",
        len(emb),
        N_SURFACE_POINTS,
        seen,
        1000 * float(np.median(spread)),
    )
    save_dense_embedding(out, emb)
    return emb


__all__ = [
    "CALIBRATION_COHORT",
    "calibrate_dense_embedding",
    "closest_barycentric",
    "dense_embedding_from_samples",
    "snap_to_surface",
    "surface_samples",
]
