"""Frames of the synthetic cohort: real face photographs, warped to a head's landmarks.

Appearance comes from photographs that ship inside installed packages (insightface's
sample images, scikit-image's astronaut); nothing photographic is stored in this
repository. Each photo's faces are found with dlib, cropped with a generous margin and
(optionally) mirrored, giving a pool of *portraits* with their own 68 landmarks.

A frame is a piecewise-affine warp of a portrait from its landmarks to the head's
projected landmarks. The triangulation covers the whole frame (landmarks, a ring
around the face that follows the head rigidly, and the frame border), and the warp is
computed as one dense inverse map per frame (triangle-index raster + per-triangle affine
+ ``cv2.remap``), which is far faster than per-pixel generic warps. When the jaw opens,
the mouth interior (dark cavity, upper teeth) is drawn inside the inner-lip polygon.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial import Delaunay

from facedyn.face.backends import DlibBackend

log = logging.getLogger(__name__)

#: iBUG-68 index permutation under a horizontal flip.
MIRROR_68 = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65]
)
INNER_LIP = np.arange(60, 68)
N_RING = 16
MAP_STEP = 2  # the dense warp map is computed at 1/MAP_STEP resolution


@dataclass(frozen=True)
class Portrait:
    """A face photograph crop with its 68 dlib landmarks (pixels in the crop)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    landmarks: np.ndarray  # (68, 2) float64
    source: str  # "<package>/<file>#<face>[:mirror]"


def package_photo_files() -> list[tuple[str, Path]]:
    """Face photographs shipped inside installed packages, as (package, path)."""
    found: list[tuple[str, Path]] = []
    spec = importlib.util.find_spec("insightface")
    if spec is not None and spec.submodule_search_locations:
        images = Path(spec.submodule_search_locations[0]) / "data" / "images"
        found += [("insightface", p) for p in sorted(images.glob("*"))
                  if p.suffix.lower() in (".jpg", ".png") and not p.name.startswith("mask_")]
    spec = importlib.util.find_spec("skimage")
    if spec is not None and spec.submodule_search_locations:
        astronaut = Path(spec.submodule_search_locations[0]) / "data" / "astronaut.png"
        if astronaut.is_file():
            found.append(("scikit-image", astronaut))
    return found


def frontal_yaw_proxy(landmarks: np.ndarray) -> float:
    """Signed asymmetry of the nose tip between the jaw ends: 0 frontal, +-1 profile."""
    left = np.linalg.norm(landmarks[30] - landmarks[0])
    right = np.linalg.norm(landmarks[30] - landmarks[16])
    return float((left - right) / np.linalg.norm(landmarks[0] - landmarks[16]))


def load_portraits(min_face_px: int = 80, mirror: bool = True, margin: float = 1.6,
                   min_score: float = 0.5, max_yaw: float = 0.5,
                   max_padding: float = 0.3) -> list[Portrait]:
    """The portrait pool: near-frontal faces of at least ``min_face_px`` in the packages' photos.

    Faces with a weak detector score (false positives such as badges) or turned far from
    the camera (they warp badly to a frontal head) are left out, and so are faces with too
    little surrounding context (``max_padding``: share of the crop outside the photo).
    Crops keep ``margin`` face-widths of context on each side.
    """
    portraits: list[Portrait] = []
    detector = DlibBackend(upsample=1)  # photos hold faces smaller than the detector's window
    for package, path in package_photo_files():
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            log.warning("skipping unreadable photo %s", path)
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        for k, face in enumerate(detector.detect(rgb)):
            lmk = face.landmarks
            width, height = face.box[2] - face.box[0], face.box[3] - face.box[1]
            if (min(width, height) < min_face_px or face.score < min_score
                    or abs(frontal_yaw_proxy(lmk)) > max_yaw):
                continue
            size = max(width, height)
            cx, cy = lmk.mean(0)
            half = int(size * (0.5 + margin))
            x0, y0 = int(cx) - half, int(cy) - half
            outside = (max(0, -x0) + max(0, x0 + 2 * half - rgb.shape[1])
                       + max(0, -y0) + max(0, y0 + 2 * half - rgb.shape[0]))
            if outside > max_padding * 2 * half:
                continue  # too little context around the face: mirrored padding looks wrong
            crop = cv2.copyMakeBorder(rgb, half, half, half, half, cv2.BORDER_REFLECT101)
            crop = crop[y0 + half:y0 + 3 * half, x0 + half:x0 + 3 * half].copy()
            local = lmk - [x0, y0]
            name = f"{package}/{path.name}#{k}"
            portraits.append(Portrait(crop, local, name))
            if mirror:
                flipped = crop[:, ::-1].copy()
                fl = local[MIRROR_68].copy()
                fl[:, 0] = crop.shape[1] - 1 - fl[:, 0]
                portraits.append(Portrait(flipped, fl, name + ":mirror"))
    if not portraits:
        raise RuntimeError(
            "no face photographs found in installed packages (insightface, scikit-image); "
            "reinstall facedyn's dependencies"
        )
    log.info("portrait pool: %d portraits", len(portraits))
    return portraits


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (2x3) mapping ``src`` points onto ``dst`` (Umeyama)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / s.var(0).sum()
    out = np.zeros((2, 3))
    out[:, :2] = scale * rot
    out[:, 2] = mu_d - scale * rot @ mu_s
    return out


def _apply(aff: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ aff[:, :2].T + aff[:, 2]


def _ring(landmarks: np.ndarray, scale: float = 1.45) -> np.ndarray:
    """Points on an ellipse around the face (forehead included), for a smooth falloff."""
    center = landmarks[[27, 8]].mean(0)
    radius = np.abs(landmarks - center).max(0) * scale
    angles = np.linspace(0, 2 * np.pi, N_RING, endpoint=False)
    return center + np.stack([np.cos(angles), np.sin(angles)], 1) * radius


class FaceWarper:
    """Renders one portrait at given target landmarks into fixed-size frames."""

    def __init__(self, portrait: Portrait, width: int, height: int,
                 lighting: Lighting | None = None) -> None:
        if lighting is not None:  # applied once to the photo rather than to every frame
            portrait = Portrait(cv2.LUT(portrait.image, lighting.lut()), portrait.landmarks,
                                portrait.source)
        self.portrait, self.width, self.height = portrait, width, height
        self._src_lmk = portrait.landmarks
        self._src_ring = _ring(portrait.landmarks)
        border = np.array([[0, 0], [0.5, 0], [1, 0], [1, 0.5], [1, 1], [0.5, 1], [0, 1], [0, 0.5]])
        self._dst_border = border * [width - 1, height - 1]
        self._triangles: np.ndarray | None = None
        self._coarse_grid: tuple[np.ndarray, np.ndarray] | None = None

    def _dense_map(self, dst: np.ndarray, aff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inverse map (output pixel -> portrait pixel) of the piecewise-affine warp.

        Computed on a grid ``MAP_STEP`` times coarser and upsampled bilinearly: the map is
        continuous and piecewise linear, so this costs well under a pixel of accuracy and
        saves most of the work.
        """
        step = MAP_STEP
        h, w = -(-self.height // step), -(-self.width // step)
        index = np.zeros((h, w), np.int32)
        corners = np.round(dst[self._triangles] / step).astype(np.int32)
        for k, tri in enumerate(corners):
            cv2.fillConvexPoly(index, tri, k + 1)
        idx = np.maximum(index - 1, 0)
        if self._coarse_grid is None or self._coarse_grid[0].shape != (h, w):
            ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) * step
            self._coarse_grid = (xs, ys)
        xs, ys = self._coarse_grid
        coef = aff.astype(np.float32).reshape(len(aff), 6)[idx]  # (h, w, 6): one gather
        maps = [coef[..., c] * xs + coef[..., 2 + c] * ys + coef[..., 4 + c] for c in (0, 1)]
        size = (w * step, h * step)
        out = [cv2.resize(m, size, interpolation=cv2.INTER_LINEAR)[:self.height, :self.width]
               for m in maps]
        return out[0], out[1]

    def _control_points(self, dst_lmk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sim = similarity_transform(self._src_lmk, dst_lmk)
        inv = cv2.invertAffineTransform(sim)
        src = np.concatenate([self._src_lmk, self._src_ring, _apply(inv, self._dst_border)])
        dst = np.concatenate([dst_lmk, _apply(sim, self._src_ring), self._dst_border])
        return src, dst

    def render(self, dst_landmarks: np.ndarray, mouth_open: float = 0.0) -> np.ndarray:
        """RGB frame (height, width, 3) with the portrait's face at ``dst_landmarks``.

        Args:
            dst_landmarks: (68, 2) target landmarks in output pixels.
            mouth_open: inner-lip gap in pixels; the cavity is drawn when it is > 0.5.
        """
        src, dst = self._control_points(np.asarray(dst_landmarks, dtype=np.float64))
        if self._triangles is None:
            # One topology for the portrait, from its first (typically neutral) pose.
            self._triangles = Delaunay(dst).simplices
        tri = self._triangles
        # Per-triangle affine maps destination -> source: solve [dst 1] A = src.
        d = np.concatenate([dst[tri], np.ones((*tri.shape, 1))], axis=2)  # (T, 3, 3)
        try:
            aff = np.linalg.solve(d, src[tri])  # (T, 3, 2)
        except np.linalg.LinAlgError:
            aff = np.linalg.lstsq(d.reshape(-1, 3), src[tri].reshape(-1, 2), rcond=None)[0]
            aff = np.broadcast_to(aff, (len(tri), 3, 2))
        map_x, map_y = self._dense_map(dst, aff)
        frame = cv2.remap(self.portrait.image, map_x, map_y, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT101)
        if mouth_open > 0.5:
            draw_mouth(frame, dst_landmarks, mouth_open)
        return frame


def draw_mouth(frame: np.ndarray, landmarks: np.ndarray, gap_px: float) -> None:
    """Paint the mouth cavity, with upper teeth, inside the inner-lip polygon (in place)."""
    lips = landmarks[INNER_LIP]
    x0, y0 = np.floor(lips.min(0)).astype(int) - 2
    x1, y1 = np.ceil(lips.max(0)).astype(int) + 3
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, frame.shape[1]), min(y1, frame.shape[0])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    scale = 16  # polygons carry 4 fractional bits (shift=4): sub-pixel corners
    cavity = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(cavity, [np.round((lips - [x0, y0]) * scale).astype(np.int32)], 255,
                 lineType=cv2.LINE_AA, shift=4)
    teeth = np.zeros_like(cavity)
    upper = landmarks[[60, 61, 62, 63, 64]] - [x0, y0]
    depth = min(gap_px * 0.35, 3.0)
    band = np.concatenate([upper, upper[::-1] + np.array([0.0, depth])])
    cv2.fillPoly(teeth, [np.round(band * scale).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    teeth = np.minimum(teeth, cavity)  # teeth only inside the mouth
    roi = frame[y0:y1, x0:x1].astype(np.float32)
    a_cav = (cavity.astype(np.float32) / 255)[..., None]
    a_teeth = (teeth.astype(np.float32) / 255)[..., None]
    roi = roi * (1 - a_cav) + np.array([45, 18, 22], np.float32) * a_cav
    roi = roi * (1 - a_teeth) + np.array([215, 210, 200], np.float32) * a_teeth
    frame[y0:y1, x0:x1] = np.clip(roi, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Lighting:
    """Per-session photometric look: gain, offset, gamma and white balance."""

    contrast: float = 1.0
    brightness: float = 0.0
    gamma: float = 1.0
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def lut(self) -> np.ndarray:
        """(256, 1, 3) uint8 lookup table for ``cv2.LUT`` on RGB frames."""
        x = np.arange(256) / 255.0
        y = np.clip(x ** self.gamma * self.contrast + self.brightness, 0, 1)
        table = np.stack([np.clip(y * g, 0, 1) for g in self.white_balance], 1)
        return np.round(table * 255).astype(np.uint8)[:, None, :]
