"""The synthetic cohort's frames: the head as a textured, depth-tested 3D mesh.

A frame is the procedural head, posed by the same linear blend skinning that produces the
truth, drawn with :mod:`facedyn.synthetic.raster` over a background:

* **Skin** is textured from the speaker's portrait *at its neutral fit*: the photo is
  warped once onto the neutral head (the speaker's shape, no expression, frontal) as the
  session's camera sees it, by a similarity transform from the photo's 68 dlib landmarks to
  the head's and a thin-plate-spline correction that makes the two sets meet exactly. When the
  head moves, the photo's eyes, brows and lips move with the mesh.
* **The mouth interior** shows when the lips part: the inside of the skin is a dark cavity,
  upper teeth follow the skull, lower teeth and a tongue follow the jaw (extra vertices
  skinned with the head's own joints and identity blendshapes, so they sit behind this
  speaker's lips). The photo's own mouth opening is painted over (inpainted) in the texture,
  so a smiling photo does not put teeth on the lips.
* **Eyelids** are skin: a blink moves the lid vertices, and the lid texture covers the eye.
* **Shading**: the skin is darkened or lightened by how far it has turned from a light at the
  camera since the neutral pose (the photo keeps its own shading there).
* **The background** is the photo itself (hair, neck, room), moved rigidly with the head, with
  the face filled in from around it (a turn of the head uncovers no second jaw line).

The mesh carries the head's own faces (eyeballs dropped: the skin always covers them), so the
landmarks of the truth are points of the drawn surface.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy.interpolate import RBFInterpolator

from facedyn.face.ibug import inter_ocular
from facedyn.flame.io import EXPR_OFFSET, FlameArrays
from facedyn.flame.landmarks import LandmarkEmbedding, barycentric_points
from facedyn.flame.model import FLAME
from facedyn.synthetic.appearance import Lighting, Portrait, similarity_transform
from facedyn.synthetic.raster import CAVITY, SKIN, TEETH, TONGUE, Rasterizer, vertex_normals

#: Joints of the FLAME kinematic tree the interior parts follow.
NECK_JOINT, JAW_JOINT = 1, 2
#: Colours (RGB, 0-255) of the mouth interior.
CAVITY_RGB = (58.0, 22.0, 26.0)
TEETH_RGB = (212.0, 204.0, 186.0)
TONGUE_RGB = (150.0, 62.0, 66.0)
#: Shading of the skin relative to the photo's own: a light from the camera, a little above
#: (camera space: +z towards the camera, +y up), ambient share, and the clip of the ratio.
LIGHT_DIRECTION = (np.array([0.0, 0.35, 1.0]) / np.linalg.norm([0.0, 0.35, 1.0])).astype(np.float32)
AMBIENT = 0.45
SHADE_RANGE = (0.55, 1.25)
CANVAS_MARGIN = 0.25  # canvas margin around the neutral frame, in frame sizes
MAP_STEP = 4  # pixels between the points where the portrait warp is evaluated exactly
#: Landmarks the background's rigid motion is estimated from (brows, nose, eyes).
RIGID_POINTS = np.arange(17, 48)
#: Inner-lip landmarks that coincide on a closed mouth (upper 61-63, lower 65-67).
_UPPER_INNER, _LOWER_INNER = [61, 62, 63], [67, 66, 65]


@dataclass(frozen=True)
class RenderMesh:
    """The head plus its mouth interior, in FLAME's array layout, with draw attributes."""

    arrays: FlameArrays
    material: np.ndarray  # (F,) int8: raster.SKIN / TEETH / TONGUE / CAVITY
    two_sided: np.ndarray  # (F,) bool
    vertex_colour: np.ndarray  # (V, 3) float32
    vertex_light: np.ndarray  # (V,) float32
    n_head_vertices: int


def _sheet(xs: np.ndarray, ys: np.ndarray, zs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A grid of (n_v, n_u) vertices given as three arrays, and its triangles (front = +z)."""
    n_v, n_u = xs.shape
    verts = np.stack([xs, ys, zs], -1).reshape(-1, 3)
    faces = []
    for j in range(n_v - 1):
        for i in range(n_u - 1):
            a, b = j * n_u + i, j * n_u + i + 1
            c, d = (j + 1) * n_u + i + 1, (j + 1) * n_u + i
            faces += [[a, b, c], [a, c, d]]
    return verts, np.array(faces, dtype=np.int64)


def _mouth_frame(arrays: FlameArrays, embedding: LandmarkEmbedding) -> dict[str, float]:
    """Mouth line, inner-corner half-width and lip front depth of the neutral template."""
    verts = torch.from_numpy(arrays.v_template)[None]
    faces = torch.from_numpy(arrays.faces).long()
    lmk = barycentric_points(
        verts,
        faces,
        torch.from_numpy(embedding.full_faces).long(),
        torch.from_numpy(embedding.full_bary),
    )[0].numpy()
    return {
        "y": float(lmk[60:68, 1].mean()),
        "half_width": float(abs(lmk[64, 0] - lmk[60, 0]) / 2),
        "x": float(lmk[[60, 64], 0].mean()),
        "z": float(lmk[[62, 66], 2].mean()),
    }


def build_render_mesh(arrays: FlameArrays, embedding: LandmarkEmbedding) -> RenderMesh:
    """The head's skin plus teeth and tongue, skinned like the head.

    The interior parts take the identity blendshapes of the nearest mouth-line vertex on
    their side of the slit (upper copies for the upper teeth, jaw-skinned lower copies for
    the lower teeth and tongue), so they follow each speaker's mouth, and no expression
    blendshapes (teeth are rigid).
    """
    mouth = _mouth_frame(arrays, embedding)
    y0, hw, x0, zf = mouth["y"], mouth["half_width"], mouth["x"], mouth["z"]
    u = np.linspace(-1.0, 1.0, 13)

    def arch(depth: float, rows: np.ndarray, spread: float) -> tuple[np.ndarray, ...]:
        xs = np.broadcast_to(x0 + spread * hw * u, (len(rows), len(u)))
        ys = np.broadcast_to(rows[:, None], xs.shape) + 0.0018 * u[None, :] ** 2
        zs = np.broadcast_to(zf - depth - 0.011 * u**2, xs.shape)
        return xs.copy(), ys.copy(), zs.copy()

    # Upper incisors end just below the closed lips' line, so slightly parted lips show a
    # dark gap and the teeth appear as the mouth opens; lower teeth sit behind them.
    upper_v, upper_f = _sheet(*arch(0.0045, np.linspace(y0 + 0.009, y0 - 0.0010, 4), 0.9))
    lower_v, lower_f = _sheet(*arch(0.0060, np.linspace(y0 - 0.0004, y0 - 0.0105, 4), 0.85))
    tz = np.linspace(zf - 0.007, zf - 0.040, 5)
    tu = np.linspace(-1.0, 1.0, 7)
    txs = np.broadcast_to(x0 + 0.9 * hw * tu, (len(tz), len(tu)))
    tys = np.broadcast_to(y0 - 0.0075 + 0.003 * (1 - tu**2), txs.shape)  # arched across
    tzs = np.broadcast_to(tz[:, None], txs.shape)
    tongue_v, tongue_f = _sheet(txs.copy(), tys.copy(), tzs.copy())
    # The tongue's grid runs front-to-back: flip so its upper side faces the camera's half.
    tongue_f = tongue_f[:, ::-1].copy()

    skin_faces = arrays.faces
    is_eye = arrays.weights[:, 3:5].sum(1) > 0.5
    keep = ~is_eye[skin_faces].any(1)
    head_faces = skin_faces[keep]

    n_v = arrays.n_vertices
    parts = [
        (upper_v, upper_f, TEETH, NECK_JOINT),
        (lower_v, lower_f, TEETH, JAW_JOINT),
        (tongue_v, tongue_f, TONGUE, JAW_JOINT),
    ]
    v_all, f_all = [arrays.v_template], [head_faces]
    material = [np.full(len(head_faces), SKIN, np.int8)]
    weights = [arrays.weights]
    colour = [np.zeros((n_v, 3))]
    light = [np.ones(n_v)]
    anchors = []
    jaw_w = arrays.weights[:, JAW_JOINT]
    near_mouth = (
        (np.abs(arrays.v_template[:, 1] - y0) < 0.0015)
        & (np.abs(arrays.v_template[:, 0] - x0) < hw)
        & ~is_eye
    )
    start = n_v
    for verts, faces, mat, joint in parts:
        side = near_mouth & ((jaw_w > 0.5) if joint == JAW_JOINT else (jaw_w < 0.5))
        cand = np.flatnonzero(side)
        d = np.abs(arrays.v_template[cand, 0][None, :] - verts[:, 0][:, None])
        anchors.append(cand[np.argmin(d, axis=1)])
        v_all.append(verts)
        f_all.append(faces + start)
        material.append(np.full(len(faces), mat, np.int8))
        w = np.zeros((len(verts), arrays.weights.shape[1]))
        w[:, joint] = 1.0
        weights.append(w)
        rgb = np.array(TEETH_RGB if mat == TEETH else TONGUE_RGB)
        colour.append(np.broadcast_to(rgb, (len(verts), 3)))
        # Darker towards the back of the mouth and towards the corners (in the lips' shade).
        depth = np.clip((zf - verts[:, 2]) / 0.03, 0.0, 1.0)
        side_shade = np.clip(np.abs(verts[:, 0] - x0) / (1.1 * hw), 0.0, 1.0)
        light.append(0.95 - 0.45 * depth - 0.55 * side_shade**2)
        start += len(verts)
    anchor = np.concatenate(anchors)
    n_extra = start - n_v
    shapedirs = np.concatenate([arrays.shapedirs, arrays.shapedirs[anchor]], 0)
    shapedirs[n_v:, :, EXPR_OFFSET:] = 0.0
    posedirs = np.concatenate([arrays.posedirs, np.zeros((n_extra, *arrays.posedirs.shape[1:]))])
    j_regressor = np.concatenate(
        [arrays.j_regressor, np.zeros((arrays.j_regressor.shape[0], n_extra))], 1
    )
    mesh_arrays = FlameArrays(
        v_template=np.concatenate(v_all),
        faces=np.concatenate(f_all),
        shapedirs=shapedirs,
        posedirs=posedirs,
        j_regressor=j_regressor,
        weights=np.concatenate(weights),
        parents=arrays.parents.copy(),
    )
    faces = mesh_arrays.faces
    mat = np.concatenate(material)
    return RenderMesh(
        arrays=mesh_arrays,
        material=mat,
        two_sided=np.ones(len(faces), bool),  # the skin's inside is the cavity
        vertex_colour=np.concatenate(colour).astype(np.float32),
        vertex_light=np.concatenate(light).astype(np.float32),
        n_head_vertices=n_v,
    )


def _closed_mouth_texture(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The portrait with its mouth opening (inner-lip polygon) painted over with lip colour."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(landmarks[60:68]).astype(np.int32)], 255)
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    if not mask.any():
        return image
    return cv2.inpaint(image, mask, 3, cv2.INPAINT_TELEA)


def _faceless(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The image with the face (inside the jaw contour, up to above the brows) filled in.

    The background moves only rigidly while the mesh turns in 3D; where a turn uncovers the
    background next to the face, it must not show the photo's own cheek and jaw line (a
    second face outline that a detector would read). The fill is a normalised Gaussian
    convolution of the surroundings: smooth, and cheap enough to run once per video.
    """
    iod = float(inter_ocular(landmarks))
    top = landmarks[17:27].copy()
    top[:, 1] -= 0.6 * iod  # the forehead up to the hairline
    hull = cv2.convexHull(np.round(np.concatenate([landmarks[:17], top])).astype(np.int32))
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    # Inside the outline only: the mesh covers it at the neutral pose, and nothing around it
    # may change (that would draw a band along the jaw).
    mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    keep = (1 - mask).astype(np.float32)
    sigma = max(2.0, 0.35 * iod)
    num = cv2.GaussianBlur(image.astype(np.float32) * keep[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(keep, (0, 0), sigma)[..., None]
    fill = num / np.maximum(den, 1e-3)
    out = np.where(mask[..., None].astype(bool), fill, image.astype(np.float32))
    return np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8))


def texture_coordinates(
    points: np.ndarray, neutral_landmarks: np.ndarray, portrait_landmarks: np.ndarray
) -> np.ndarray:
    """Where points of the neutral frame fall in the portrait (pixels).

    Args:
        points: (N, 2) pixels of the frame the session's camera sees of the neutral,
            frontal head.
        neutral_landmarks: (68, 2) the neutral head's projected landmarks.
        portrait_landmarks: (68, 2) the portrait's landmarks (pixels).

    The map is a similarity (least squares over all landmarks) plus a thin-plate spline
    through the landmarks and two rings of points that follow the similarity, so the face's
    features meet exactly and the map turns rigid away from the face. The closed mouth's
    inner-lip points (which coincide) are pinned to the middle of the photo's lip gap.
    """
    src = neutral_landmarks.astype(np.float64)
    dst = portrait_landmarks.astype(np.float64).copy()
    mid = 0.5 * (dst[_UPPER_INNER] + dst[_LOWER_INNER])
    dst[_UPPER_INNER] = mid
    dst[_LOWER_INNER] = mid
    keep = np.setdiff1d(np.arange(68), _LOWER_INNER)  # coinciding points enter once
    sim = similarity_transform(src, dst)
    centre = src.mean(0)
    radius = np.abs(src - centre).max(0)
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ring = np.concatenate(
        [centre + np.stack([np.cos(angles), np.sin(angles)], 1) * radius * s for s in (1.8, 3.0)]
    )
    ctrl_src = np.concatenate([src[keep], ring])
    ctrl_dst = np.concatenate([dst[keep], ring @ sim[:, :2].T + sim[:, 2]])
    residual = RBFInterpolator(
        ctrl_src, ctrl_dst - (ctrl_src @ sim[:, :2].T + sim[:, 2]), kernel="thin_plate_spline"
    )
    pts = np.asarray(points, np.float64)
    return (pts @ sim[:, :2].T + sim[:, 2] + residual(pts)).astype(np.float32)


class HeadRenderer:
    """Draws one speaker's head in one session, frame by frame.

    The portrait is warped once into the session's *neutral frame* (the frame the camera
    would see of the neutral, frontal head) by :func:`texture_coordinates`. That image is
    both the skin's texture (a vertex's texture coordinate is where it projects at neutral)
    and the background, which moves rigidly with the head: so at the neutral pose the
    frame is the photo warped onto the head, and the photo's face outline, hair and neck
    stay where the mesh's outline is.

    Args:
        mesh: :func:`build_render_mesh` of the head.
        neutral_screen: (V, 2) render-mesh vertices of this speaker's neutral, frontal head
            projected with the session's camera (pixels).
        neutral_landmarks: (68, 2) its projected landmarks.
        portrait: the speaker's photo and landmarks.
        width, height: frame size.
        lighting: the session's photometric look, applied once to the photo.
        neutral_vertices: (V, 3) the neutral head's vertices in camera space; with them (and
            ``vertices`` in :meth:`render`) the skin is shaded by how far each vertex has
            turned towards or away from the light since the neutral pose (the photo keeps
            its own shading at the neutral pose).
    """

    def __init__(
        self,
        mesh: RenderMesh,
        neutral_screen: np.ndarray,
        neutral_landmarks: np.ndarray,
        portrait: Portrait,
        width: int,
        height: int,
        lighting: Lighting | None = None,
        neutral_vertices: np.ndarray | None = None,
    ) -> None:
        image = portrait.image
        if lighting is not None:
            image = cv2.LUT(image, lighting.lut())
        image = _closed_mouth_texture(image, portrait.landmarks)
        self.mesh, self.width, self.height = mesh, width, height
        # The canvas is the neutral frame plus a margin, so the background has photo to show
        # wherever the head moves. The portrait warp is smooth: evaluated on a coarse grid
        # and interpolated bilinearly.
        step, margin = MAP_STEP, CANVAS_MARGIN * max(width, height)
        margin = step * -(-int(margin) // step)
        ch, cw = height + 2 * margin, width + 2 * margin
        gh, gw = -(-ch // step) + 1, -(-cw // step) + 1
        ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float64) * step - margin
        where = texture_coordinates(
            np.stack([xs.ravel(), ys.ravel()], 1), neutral_landmarks, portrait.landmarks
        ).reshape(gh, gw, 2)
        fy, fx = np.mgrid[0:ch, 0:cw].astype(np.float32) / step
        map_x, map_y = (
            cv2.remap(where[..., k].astype(np.float32), fx, fy, cv2.INTER_LINEAR) for k in (0, 1)
        )
        self.canvas = np.ascontiguousarray(
            cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        )
        self.margin = margin
        self.background = _faceless(self.canvas, neutral_landmarks + margin)
        self.neutral_rigid = neutral_landmarks[RIGID_POINTS].astype(np.float64)
        tex = np.zeros((len(neutral_screen), 2), np.float32)
        tex[: mesh.n_head_vertices] = neutral_screen[: mesh.n_head_vertices] + margin
        self.tex_coords = tex
        self.faces = np.ascontiguousarray(mesh.arrays.faces.astype(np.int32))
        self.raster = Rasterizer(width, height)
        self.cavity = np.array(CAVITY_RGB, np.float32)
        self._normals = np.zeros((len(neutral_screen), 3), np.float32)
        self._neutral_diffuse: np.ndarray | None = None
        if neutral_vertices is not None:
            self._neutral_diffuse = self._diffuse(neutral_vertices)

    def _diffuse(self, vertices: np.ndarray) -> np.ndarray:
        vertex_normals(np.ascontiguousarray(vertices, np.float32), self.faces, self._normals)
        return AMBIENT + (1 - AMBIENT) * np.maximum(self._normals @ LIGHT_DIRECTION, 0.0)

    def render(
        self,
        screen: np.ndarray,
        depth: np.ndarray,
        landmarks: np.ndarray,
        vertices: np.ndarray | None = None,
    ) -> np.ndarray:
        """RGB frame (H, W, 3) uint8.

        Args:
            screen: (V, 2) projected render-mesh vertices (pixels).
            depth: (V,) their distance from the camera along the view axis.
            landmarks: (68, 2) the projected landmarks (the background follows their rigid part).
            vertices: (V, 3) the vertices in camera space, for shading (see the class).
        """
        light = self.mesh.vertex_light
        if vertices is not None and self._neutral_diffuse is not None:
            skin = slice(0, self.mesh.n_head_vertices)
            light = light.copy()
            light[skin] *= np.clip(
                self._diffuse(vertices)[skin] / self._neutral_diffuse[skin], *SHADE_RANGE
            )
        sim = similarity_transform(self.neutral_rigid, np.asarray(landmarks)[RIGID_POINTS])
        sim[:, 2] -= sim[:, :2] @ np.array([self.margin, self.margin])  # from canvas pixels
        frame = cv2.warpAffine(
            self.background,
            sim,
            (self.width, self.height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT101,
        )
        self.raster.draw(
            frame,
            np.ascontiguousarray(screen, np.float32),
            np.ascontiguousarray(depth, np.float32),
            self.faces,
            self.mesh.two_sided,
            self.mesh.material,
            self.tex_coords,
            self.canvas,
            self.mesh.vertex_colour,
            light,
            self.cavity,
        )
        return frame


def render_model(mesh: RenderMesh, n_shape: int, n_expr: int) -> FLAME:
    """The render mesh as a FLAME module (same LBS as the head that makes the truth)."""
    return FLAME(mesh.arrays, n_shape=n_shape, n_expr=n_expr, dtype=torch.float32)


__all__ = [
    "CAVITY",
    "HeadRenderer",
    "RenderMesh",
    "build_render_mesh",
    "render_model",
    "texture_coordinates",
]
