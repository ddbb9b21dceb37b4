"""A procedural, SYNTHETIC head written in FLAME's file layout -- NOT the FLAME model.

.. warning::

   Everything in this module is a hand-written procedural stand-in.  It is **not** FLAME,
   it is not derived from FLAME or from any scan, landmark file or statistical face model,
   and its components have nothing to do with FLAME's PCA bases.  Numbers produced with it
   say nothing about real faces.  It exists so that the pipeline, its tests and the
   synthetic cohort run offline without the licensed FLAME download.

What it is good for: exercising every code path that consumes a FLAME model -- the pkl
loader, linear blend skinning, the DECA-format landmark embedding with its 79 yaw bins,
landmark-based fitting, and the synthetic cohort, which draws this head as a textured mesh
-- with a head whose 68 iBUG landmarks look and move like a face's.

Geometry (all in metres; +y up, +z out of the face towards the camera, +x to the image
right, i.e. the subject's left; the root joint is at the origin):

* The skin is a closed surface of horizontal cross-sections ("rings"; only the mouth slit is
  open): each ring has a face half (boxy at the forehead and eyes, rounder below) and an
  elliptic back half, and its half-width ``W(y)`` is the frontal outline.
  Below ear level ``W(y)`` *is* the iBUG jaw contour, so at yaw 0 the contour landmarks lie
  exactly on the silhouette.  Facial features (nose, brows, eye sockets, lips, chin,
  cheekbones) are depth (z) offsets, so every skin vertex keeps its ring's height and
  frontal (x, y) layout -- which makes landmark placement exact.
* The mouth is a slit: the vertices along the mouth line between the inner lip corners
  are duplicated, the upper-lip triangles use one copy and the lower-lip triangles the
  other, so the jaw (or the ``lips_part`` expression) opens the mouth.
* Two small eyeball spheres (disconnected meshes) are skinned 100% to the eye joints.

Joints (FLAME's order): 0 root (back of the head, at the origin), 1 neck, 2 jaw (midpoint
of the two jaw hinges), 3 left eye (+x), 4 right eye (-x); ``J = J_regressor @ v_shaped``
with a handful of vertices per joint, so joints follow identity shape.

Pose: (B, 15) axis-angle ``[global, neck, jaw, eye_l, eye_r]``.  **A positive rotation of
the jaw about +x opens the mouth** (the chin moves down, -y), as in FLAME.

Skinning: lower lip, chin and the jaw line follow the jaw joint with a smooth falloff
towards the cheeks; the upper lip, nose and the rest of the head follow the neck, the
nape partly the root.  Pose correctives (``posedirs``) are non-zero only for the jaw's
features and only on vertices with a fractional jaw weight (a slight cheek hollowing as
the mouth opens), so a jaw rotation moves nothing but jaw-skinned vertices.

Blendshapes (``shapedirs`` (V, 3, 400), FLAME's layout): identity in columns 0..299,
expression in 300..399; only the first ``n_shape`` / ``n_expr`` columns are non-zero.  The
first components are interpretable (:data:`IDENTITY_COMPONENTS`,
:data:`EXPRESSION_COMPONENTS`), the rest are smooth random fields (identity) or small local
bumps (expression) with decaying magnitude; coefficients ~ N(0, 1) give plausible variation
and 2-3 a strong but anatomically plausible expression.  ``blink`` closes both eyes at
coefficient :data:`BLINK_CLOSED_COEFF`.  Only the random components depend on ``seed``.

Landmark embedding (DECA's ``landmark_embedding.npy``): iBUG-68 points placed from a
procedural mean-face layout (parametric curves, :func:`canonical_landmarks_2d`; no landmark
data is copied from anywhere).  The 79 x 17 dynamic contour follows the DECA yaw
convention of :func:`facedyn.flame.landmarks.yaw_bins` with ``yaw_sign=+1``: bin ``b`` in
0..39 is yaw ``+b`` degrees and bin ``b`` in 40..78 is yaw ``-(b - 39)`` degrees, positive yaw
turning the nose towards +x.  For each bin the contour points on the side that turns away
sit on the projected silhouette of the head at their own height; those on the side that
turns towards the camera stay on the frontal jawline.  The file is written byte-for-byte
reproducibly (torch's own tensor pickling embeds memory addresses, so the tensors are
pickled as ``torch.from_numpy(array)``, which loads back to the same tensors).

Modules by concern: :mod:`~facedyn.flame.synthetic.geometry` (layout, relief, mesh),
:mod:`~facedyn.flame.synthetic.rig` (skinning, joints, pose correctives),
:mod:`~facedyn.flame.synthetic.embedding` (landmarks), :mod:`~facedyn.flame.synthetic.bases`
(blendshapes); this package's own module assembles them and writes the files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from facedyn.atomic import atomic_write_bytes
from facedyn.flame.io import FlameArrays, save_flame_pickle
from facedyn.flame.landmarks import LandmarkEmbedding, save_landmark_embedding
from facedyn.flame.synthetic.bases import (
    BLINK_CLOSED_COEFF,
    EXPRESSION_COMPONENTS,
    IDENTITY_COMPONENTS,
    MAX_EXPR,
    MAX_SHAPE,
    _expression_basis,
    _identity_basis,
)
from facedyn.flame.synthetic.embedding import _embedding
from facedyn.flame.synthetic.geometry import _build_mesh, _lower_face_proportions
from facedyn.flame.synthetic.rig import _joint_regressor, _pose_correctives, _skinning_weights

GENERATOR_VERSION = "1"
#: Sign of the jaw rotation about +x that opens the mouth.
JAW_OPEN_SIGN = 1.0
PARENTS = np.array([-1, 0, 1, 1, 1], dtype=np.int64)
JOINT_NAMES = ("root", "neck", "jaw", "eye_l", "eye_r")
FILE_NAMES = {
    "model": "synthetic_head.pkl",
    "landmark_embedding": "landmark_embedding.npy",
    "components": "components.json",
    "readme": "README.txt",
}
SYNTHETIC_STATEMENT = (
    "SYNTHETIC: a procedural stand-in head written in FLAME's file layout. "
    "It is NOT the FLAME model, not derived from FLAME or any real face data; "
    "its components are hand-made, and results obtained with it say nothing about real faces."
)


# --------------------------------------------------------------------------- public API


def _check_counts(n_shape: int, n_expr: int, seed: int) -> None:
    if (
        isinstance(n_shape, bool)
        or not isinstance(n_shape, (int, np.integer))
        or not 1 <= n_shape <= MAX_SHAPE
    ):
        raise ValueError(f"n_shape must be an integer in 1..{MAX_SHAPE}, got {n_shape!r}")
    if (
        isinstance(n_expr, bool)
        or not isinstance(n_expr, (int, np.integer))
        or not 1 <= n_expr <= MAX_EXPR
    ):
        raise ValueError(f"n_expr must be an integer in 1..{MAX_EXPR}, got {n_expr!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _component_list(names: tuple[tuple[str, str], ...], n: int, rest: str) -> list[dict[str, Any]]:
    out = []
    for k in range(n):
        if k < len(names):
            out.append({"index": k, "name": names[k][0], "description": names[k][1]})
        else:
            out.append(
                {"index": k, "name": f"{rest}_{k:03d}", "description": rest.replace("_", " ")}
            )
    return out


def build_synthetic_head(
    n_shape: int = 100, n_expr: int = 50, seed: int = 0
) -> tuple[FlameArrays, LandmarkEmbedding, dict[str, Any]]:
    """Build the procedural head in memory (pure; deterministic given the arguments).

    Args:
        n_shape: identity components to fill (1..300); columns beyond are zero.
        n_expr: expression components to fill (1..100); columns beyond are zero.
        seed: seeds the random (non-interpretable) components only.

    Returns:
        FLAME-layout arrays (float64, root joint at the origin), the DECA-format landmark
        embedding (``yaw_sign=+1``) and a JSON-ready metadata dict naming the components.

    Raises:
        ValueError: ``n_shape`` / ``n_expr`` out of range or a negative seed.
    """
    _check_counts(n_shape, n_expr, seed)
    mesh = _build_mesh()
    emb = _embedding(mesh)
    rng = np.random.default_rng(int(seed))
    identity = _identity_basis(mesh, rng)
    expression = _expression_basis(mesh, emb, rng)
    identity[:, :, n_shape:] = 0.0
    expression[:, :, n_expr:] = 0.0
    weights = _skinning_weights(mesh)
    j_regressor = _joint_regressor(mesh)
    vertices = _lower_face_proportions(mesh.vertices)
    # Put the root joint at the origin, as FLAME's template roughly has it.
    v_template = vertices - j_regressor[0] @ vertices
    arrays = FlameArrays(
        v_template=v_template,
        faces=mesh.faces.copy(),
        shapedirs=np.concatenate([identity, expression], axis=2),
        posedirs=_pose_correctives(mesh, weights[:, 2]),
        j_regressor=j_regressor,
        weights=weights,
        parents=PARENTS.copy(),
    )
    meta: dict[str, Any] = {
        "synthetic": True,
        "statement": SYNTHETIC_STATEMENT,
        "generator": "facedyn.flame.synthetic",
        "generator_version": GENERATOR_VERSION,
        "n_shape": int(n_shape),
        "n_expr": int(n_expr),
        "seed": int(seed),
        "n_vertices": len(v_template),
        "n_faces": len(mesh.faces),
        "identity": _component_list(IDENTITY_COMPONENTS, n_shape, "random_smooth_field"),
        "expression": _component_list(EXPRESSION_COMPONENTS, n_expr, "random_local_bump"),
        "blink_closed": BLINK_CLOSED_COEFF,
        "jaw_open_sign": JAW_OPEN_SIGN,
        "conventions": {
            "units": "metres",
            "axes": "+y up, +z out of the face (towards the camera), +x image right "
            "(the subject's left)",
            "joints": list(JOINT_NAMES),
            "pose": "(B, 15) axis-angle [global, neck, jaw, eye_l, eye_r]",
            "jaw_open": "a positive rotation of the jaw about +x opens the mouth",
            "blink_closed_coefficient": BLINK_CLOSED_COEFF,
            "left_right": "'left' is the subject's left (+x)",
            "landmarks": "iBUG-68; dynamic contour bins follow DECA (yaw_sign=+1): bin b<=39 "
            "is yaw +b deg, bin b>=40 is yaw -(b-39) deg; positive yaw turns the "
            "nose towards +x",
        },
    }
    return arrays, emb, meta


def _readme(meta: dict[str, Any]) -> str:
    ident = ", ".join(c["name"] for c in meta["identity"][: len(IDENTITY_COMPONENTS)])
    expr = ", ".join(c["name"] for c in meta["expression"][: len(EXPRESSION_COMPONENTS)])
    return (
        "SYNTHETIC HEAD -- THIS IS NOT THE FLAME MODEL\n"
        "=============================================\n\n"
        f"{SYNTHETIC_STATEMENT}\n\n"
        "Written by facedyn.flame.synthetic (generator version "
        f"{meta['generator_version']}; n_shape={meta['n_shape']}, n_expr={meta['n_expr']}, "
        f"seed={meta['seed']}).\n"
        "It only mimics FLAME's file layout so that code written for FLAME runs offline:\n"
        f"  {FILE_NAMES['model']:<24}FLAME-format pkl ({meta['n_vertices']} vertices, "
        f"{meta['n_faces']} faces, shapedirs identity 0..299, expression 300..399)\n"
        f"  {FILE_NAMES['landmark_embedding']:<24}DECA-format iBUG-68 landmark embedding\n"
        f"  {FILE_NAMES['components']:<24}names of the components and the conventions\n\n"
        f"Interpretable identity components (first columns): {ident}.\n"
        f"Interpretable expression components (columns 300..): {expr}.\n"
        "A positive jaw rotation about +x opens the mouth; blink closes the eyes at "
        f"{BLINK_CLOSED_COEFF}.\n"
        "Do not report results obtained with this head as results about FLAME or real faces.\n"
    )


def write_synthetic_flame(
    directory: str | os.PathLike[str], n_shape: int = 100, n_expr: int = 50, seed: int = 0
) -> dict[str, Path]:
    """Write the procedural head (NOT FLAME) into ``directory``.

    Files: ``synthetic_head.pkl`` (FLAME pkl layout, loadable with
    :func:`facedyn.flame.io.load_flame_arrays`), ``landmark_embedding.npy`` (DECA format,
    readable by :func:`facedyn.flame.landmarks.load_landmark_embedding` and DECA-style
    ``np.load(..., allow_pickle=True)``), ``components.json`` and ``README.txt``.
    Byte-identical for identical arguments.

    Returns:
        ``{"model", "landmark_embedding", "components", "readme"}`` -> path.

    Raises:
        ValueError: ``n_shape`` not in 1..300, ``n_expr`` not in 1..100, or a negative seed.
    """
    arrays, emb, meta = build_synthetic_head(n_shape, n_expr, seed)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {key: out / name for key, name in FILE_NAMES.items()}
    save_flame_pickle(paths["model"], arrays)
    save_landmark_embedding(paths["landmark_embedding"], emb)
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(paths["components"], text.encode("utf-8"))
    atomic_write_bytes(paths["readme"], _readme(meta).encode("utf-8"))
    return paths
