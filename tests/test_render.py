"""The synthetic cohort's renderer: z-buffer, textured head, mouth interior, eyelids, contacts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from facedyn.flame.camera import project
from facedyn.flame.io import EXPR_OFFSET
from facedyn.flame.model import FLAME
from facedyn.flame.synthetic import EXPRESSION_COMPONENTS, build_synthetic_head
from facedyn.synthetic.appearance import load_portraits
from facedyn.synthetic.behaviour import ExpressionRoles, resonant_texture
from facedyn.synthetic.contact import contact_gaps, enforce_contacts
from facedyn.synthetic.raster import (
    BACK_BIT,
    CAVITY,
    SKIN,
    TEETH,
    Rasterizer,
    rasterize,
    vertex_normals,
)
from facedyn.synthetic.scene import (
    CAVITY_RGB,
    JAW_JOINT,
    NECK_JOINT,
    HeadRenderer,
    build_render_mesh,
    render_model,
)

W, H = 320, 240
NAMES = [name for name, _ in EXPRESSION_COMPONENTS]


def _buffers(w: int = 8, h: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.full((h, w), np.inf, np.float32),
        np.full((h, w), -1, np.int32),
        np.zeros((h, w, 2), np.float32),
    )


def test_nearer_triangle_wins_and_back_faces_are_culled_or_flagged():
    # Two squares-worth triangles over the same pixels: face 0 far, face 1 near.
    screen = np.array([[0, 0], [7, 0], [0, 7], [0, 0], [7, 0], [0, 7]], np.float32)
    depth = np.array([2, 2, 2, 1, 1, 1], np.float32)
    front = np.array([[0, 2, 1], [3, 5, 4]], np.int32)  # counter-clockwise on screen: front
    zbuf, fid, bary = _buffers()
    box = rasterize(screen, depth, front, np.zeros(2, bool), zbuf, fid, bary)
    assert box == (0, 0, 7, 7)
    assert fid[1, 1] == 1 and zbuf[1, 1] == pytest.approx(1.0)
    assert fid[7, 7] == -1  # outside both triangles
    # Reversed winding: culled when one-sided, drawn with the back bit when two-sided.
    back = front[:, ::-1].copy()
    zbuf, fid, bary = _buffers()
    rasterize(screen, depth, back, np.zeros(2, bool), zbuf, fid, bary)
    assert (fid == -1).all()
    rasterize(screen, depth, back, np.ones(2, bool), zbuf, fid, bary)
    assert fid[1, 1] == (1 | BACK_BIT)
    # Barycentric weights reproduce the pixel position.
    zbuf, fid, bary = _buffers()
    rasterize(screen, depth, front[:1], np.zeros(1, bool), zbuf, fid, bary)
    wb, wc = bary[2, 3]
    pos = (1 - wb - wc) * screen[0] + wb * screen[2] + wc * screen[1]
    np.testing.assert_allclose(pos, [3, 2], atol=1e-5)


def test_draw_colours_inside_of_skin_as_cavity_and_textures_the_outside():
    screen = np.array([[0, 0], [7, 0], [0, 7]], np.float32)
    faces = np.array([[0, 2, 1]], np.int32)
    texture = np.full((8, 8, 3), 200, np.uint8)
    args = dict(
        screen=screen,
        depth=np.ones(3, np.float32),
        two_sided=np.ones(1, bool),
        material=np.array([SKIN], np.int8),
        tex_coords=screen.copy(),
        texture=texture,
        vertex_colour=np.zeros((3, 3), np.float32),
        vertex_light=np.ones(3, np.float32),
        cavity_colour=np.array(CAVITY_RGB, np.float32),
    )
    r = Rasterizer(8, 8)
    frame = np.zeros((8, 8, 3), np.uint8)
    r.draw(frame, faces=faces, **args)
    assert (frame[1, 1] == 200).all() and (frame[7, 7] == 0).all()
    frame[:] = 0
    r.draw(frame, faces=faces[:, ::-1].copy(), **args)
    np.testing.assert_array_equal(frame[1, 1], np.array(CAVITY_RGB, np.uint8))


def test_vertex_normals_are_unit_and_follow_the_winding():
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.0]], np.float32)
    faces = np.array([[0, 1, 2], [1, 3, 2]], np.int32)  # counter-clockwise seen from +z
    out = np.zeros_like(verts)
    vertex_normals(verts, faces, out)
    np.testing.assert_allclose(out, np.tile([0, 0, 1.0], (4, 1)), atol=1e-6)
    vertex_normals(verts, faces[:, ::-1].copy(), out)
    np.testing.assert_allclose(out[:, 2], -1.0, atol=1e-6)


@pytest.fixture(scope="module")
def scene():
    arrays, emb, _ = build_synthetic_head(n_shape=20, n_expr=15)
    head = FLAME(arrays, 20, 15, embedding=emb)
    mesh = build_render_mesh(arrays, emb)
    return head, mesh, render_model(mesh, 20, 15), load_portraits()


def _frame(
    scene,
    portrait: int = 0,
    jaw: float = 0.0,
    expression: dict | None = None,
    renderer: HeadRenderer | None = None,
):
    head, mesh, model, portraits = scene
    shape = torch.zeros(1, 20)
    expr = torch.zeros(1, 15)
    for name, value in (expression or {}).items():
        expr[0, NAMES.index(name)] = value
    pose = torch.zeros(1, 15)
    pose[0, 6] = jaw
    with torch.no_grad():
        centre = head(shape)[0].mean(0)
        trans = torch.tensor([[-centre[0], -centre[1], -centre[2] - 0.45]])

        def screen(e, p):
            verts = model(shape, e, p)
            return (
                project(verts, trans, 350.0, (W - 1) / 2, (H - 1) / 2)[0].numpy(),
                -(verts[0, :, 2] + trans[0, 2]).numpy(),
                project(head.landmarks(shape, e, p), trans, 350.0, (W - 1) / 2, (H - 1) / 2)[
                    0
                ].numpy(),
            )

        neutral, _, neutral_lmk = screen(None, None)
        sv, depth, lmk = screen(expr, pose)
    if renderer is None:
        renderer = HeadRenderer(mesh, neutral, neutral_lmk, portraits[portrait], W, H)
    return renderer.render(sv, depth, lmk), lmk, renderer


def _inside(frame: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    return frame[mask.astype(bool)].astype(float)


def test_render_mesh_adds_teeth_and_tongue_skinned_to_skull_and_jaw(scene):
    _, mesh, _, _ = scene
    extra = slice(mesh.n_head_vertices, None)
    weights = mesh.arrays.weights[extra]
    assert set(np.flatnonzero(weights.sum(0))) == {NECK_JOINT, JAW_JOINT}
    np.testing.assert_allclose(weights.sum(1), 1.0)
    assert not mesh.arrays.shapedirs[extra, :, EXPR_OFFSET:].any()  # teeth are rigid
    assert mesh.arrays.shapedirs[extra, :, :20].any()  # and follow the mouth's shape
    assert (mesh.material == TEETH).any() and not (mesh.material == CAVITY).any()


def test_neutral_frame_is_the_portrait_warped_onto_the_head(scene):
    frame, _, renderer = _frame(scene)
    m = renderer.margin
    diff = np.abs(frame.astype(float) - renderer.canvas[m : m + H, m : m + W].astype(float)).mean()
    assert diff < 2.0  # texture and background are one image at the neutral pose


def test_mouth_interior_shows_only_when_the_lips_part(scene):
    closed, lmk_closed, renderer = _frame(scene)
    opened, lmk_open, _ = _frame(scene, jaw=0.3, renderer=renderer)
    gap = lmk_open[66, 1] - lmk_open[62, 1]
    assert gap > 10  # pixels
    inner = _inside(opened, lmk_open[60:68])
    dark = (inner.sum(1) < 3 * 90).mean()
    bright_teeth = ((inner.min(1) > 120) & (np.ptp(inner, axis=1) < 60)).mean()  # off-white
    assert dark > 0.3 and bright_teeth > 0.05  # a dark cavity with teeth in it
    lips_closed = _inside(closed, lmk_open[60:68])
    assert (lips_closed.sum(1) < 3 * 90).mean() < dark / 3
    assert gap > 0 and lmk_closed[66, 1] - lmk_closed[62, 1] == pytest.approx(0, abs=0.5)


def test_skin_is_shaded_as_the_head_turns_from_the_light(scene):
    head, mesh, model, portraits = scene
    shape = torch.zeros(1, 20)
    with torch.no_grad():
        centre = head(shape)[0].mean(0)
        trans = torch.tensor([[-centre[0], -centre[1], -centre[2] - 0.45]])

        def view(yaw: float):
            pose = torch.zeros(1, 15)
            pose[0, 1] = yaw
            verts = model(shape, None, pose)
            return (
                project(verts, trans, 350.0, (W - 1) / 2, (H - 1) / 2)[0].numpy(),
                -(verts[0, :, 2] + trans[0, 2]).numpy(),
                project(head.landmarks(shape, None, pose), trans, 350.0, (W - 1) / 2, (H - 1) / 2)[
                    0
                ].numpy(),
                (verts[0] + trans[0]).numpy(),
            )

        neutral = view(0.0)
        turned = view(0.5)
    renderer = HeadRenderer(
        mesh, neutral[0], neutral[2], portraits[0], W, H, neutral_vertices=neutral[3]
    )
    np.testing.assert_array_equal(renderer.render(*neutral), renderer.render(*neutral[:3]))
    # Positive yaw turns the nose to the image right: the cheek on that side turns away from
    # a light at the camera (darker), the other one towards it (brighter).
    lmk = turned[2]
    right = np.concatenate([lmk[[30, 33, 8]], lmk[9:17]])
    left = np.concatenate([lmk[0:8], lmk[[8, 33, 30]]])
    change = renderer.render(*turned).astype(float) - renderer.render(*turned[:3]).astype(float)
    assert _inside(change, right).mean() < _inside(change, left).mean() - 3


def test_blink_covers_the_eyes(scene):
    opened, lmk, renderer = _frame(scene)
    closed, lmk_closed, _ = _frame(scene, expression={"blink": 2.5}, renderer=renderer)
    assert (lmk_closed[[37, 38], 1] - lmk_closed[[41, 40], 1]) == pytest.approx(0, abs=0.6)
    eye = lmk[36:42]
    # The open eye's region changes once the lid has moved over it.
    assert np.abs(_inside(closed, eye) - _inside(opened, eye)).mean() > 8


def test_contacts_keep_lips_and_lids_apart():
    arrays, emb, _ = build_synthetic_head(n_shape=20, n_expr=15)
    head = FLAME(arrays, 20, 15, embedding=emb).landmark_model()
    roles = ExpressionRoles.from_names(NAMES)
    rng = np.random.default_rng(0)
    n = 40
    expr = rng.normal(0, 0.5, (n, 15))
    expr[:20, NAMES.index("lip_press")] = 3.0  # presses the closed lips through each other
    expr[:20, roles.lips_part] = -1.0
    expr[20:30, roles.blink] = 2.5
    expr[20:30, roles.cheek_raise] = 2.0  # lower lids up into the closed upper lids
    jaw = np.zeros((n, 3))
    jaw[30:, 0] = 0.2  # wide open: nothing to correct there
    shape = rng.normal(size=20)
    lips, lids = contact_gaps(head, shape, expr, jaw)
    assert lips[:20].max() < 0 and lids[20:30].min() < 0
    fixed = enforce_contacts(head, shape, expr, jaw, roles)
    lips, lids = contact_gaps(head, shape, fixed, jaw)
    assert lips.min() > -2e-5 and lids.min() > -2e-5
    np.testing.assert_array_equal(fixed[30:], expr[30:])
    changed = np.flatnonzero((fixed != expr).any(0))
    assert set(changed) <= {roles.lips_part, roles.blink}


def test_positive_texture_keeps_its_timing_only_identity():
    rng = np.random.default_rng(1)
    slow = resonant_texture(900, 30.0, 0.3, 0.2, rng, positive=True)
    fast = resonant_texture(900, 30.0, 1.5, 0.2, rng, positive=True)
    assert slow.min() > 0
    np.testing.assert_allclose(np.sort(slow), np.sort(fast))
