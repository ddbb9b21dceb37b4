"""The synthetic cohort's appearance: face photographs from installed packages, and lighting.

Appearance comes from photographs that ship inside installed packages (insightface's
sample images, scikit-image's astronaut); nothing photographic is stored in this repository. Each photo's faces are found with dlib, cropped with a generous
margin and (optionally) mirrored, giving a pool of *portraits* with their own 68 landmarks.
:mod:`facedyn.synthetic.scene` lays a portrait onto the head as its texture.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facedyn.face.backends import DlibBackend
from facedyn.face.ibug import inter_ocular

log = logging.getLogger(__name__)

#: iBUG-68 index permutation under a horizontal flip.
MIRROR_68 = np.array(
    list(range(16, -1, -1))
    + list(range(26, 16, -1))
    + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46]
    + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)


@dataclass(frozen=True)
class Portrait:
    """A face photograph crop with its 68 dlib landmarks (pixels in the crop)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    landmarks: np.ndarray  # (68, 2) float64
    source: str  # "<package>/<file>#<face>[:mirror]"


def package_photo_files() -> list[tuple[str, Path]]:
    """Face photographs shipped inside installed packages, as (package, path), in a fixed
    order (the pool's order, which :func:`face_pool` truncates)."""
    found: list[tuple[str, Path]] = []
    spec = importlib.util.find_spec("insightface")
    if spec is not None and spec.submodule_search_locations:
        images = Path(spec.submodule_search_locations[0]) / "data" / "images"
        found += [
            ("insightface", p)
            for p in sorted(images.glob("*"))
            if p.suffix.lower() in (".jpg", ".png") and not p.name.startswith("mask_")
        ]
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


def mouth_gap(landmarks: np.ndarray) -> float:
    """Mean inner-lip gap (62-66, 61-67, 63-65) in inter-ocular distances (outer corners)."""
    iod = float(inter_ocular(landmarks))
    gaps = landmarks[[66, 67, 65], 1] - landmarks[[62, 61, 63], 1]
    return float(gaps.mean() / max(iod, 1.0))


def load_portraits(
    min_face_px: int = 80,
    mirror: bool = True,
    margin: float = 1.6,
    min_score: float = 0.5,
    max_yaw: float = 0.4,
    max_mouth_gap: float = 0.06,
    max_padding: float = 0.3,
) -> list[Portrait]:
    """The portrait pool: near-frontal faces of at least ``min_face_px`` in the packages' photos.

    Faces with a weak detector score (false positives such as badges), turned far from
    the camera or with an open mouth (both warp badly onto a neutral, frontal head) are
    left out (glasses, which would bend with the skin, are left out by the photos chosen),
    and so are faces with too little surrounding context (``max_padding``: share
    of the crop outside the photo). Crops keep ``margin`` face-widths of context on each
    side.
    """
    portraits: list[Portrait] = []
    # Photos hold faces smaller than the detector's window: one fixed upsampling, every
    # detection scored (min_score below filters), landmarks on the photo itself.
    detector = DlibBackend(upsample=1, min_score=0.0, min_predictor_px=0)
    for package, path in package_photo_files():
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            log.warning("skipping unreadable photo %s", path)
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        for k, face in enumerate(detector.detect(rgb)):
            lmk = face.landmarks
            width, height = face.box[2] - face.box[0], face.box[3] - face.box[1]
            if (
                min(width, height) < min_face_px
                or face.score < min_score
                or abs(frontal_yaw_proxy(lmk)) > max_yaw
                or mouth_gap(lmk) > max_mouth_gap
            ):
                continue
            size = max(width, height)
            cx, cy = lmk.mean(0)
            # A large face in a tight photo keeps what context it has (at least 0.6 widths).
            for m in (margin, 1.2, 0.9, 0.6):
                half = int(size * (0.5 + m))
                x0, y0 = int(cx) - half, int(cy) - half
                outside = (
                    max(0, -x0)
                    + max(0, x0 + 2 * half - rgb.shape[1])
                    + max(0, -y0)
                    + max(0, y0 + 2 * half - rgb.shape[0])
                )
                if outside <= max_padding * 2 * half:
                    break
            else:
                continue  # too little context around the face: mirrored padding looks wrong
            crop = cv2.copyMakeBorder(rgb, half, half, half, half, cv2.BORDER_REFLECT101)
            crop = crop[y0 + half : y0 + 3 * half, x0 + half : x0 + 3 * half].copy()
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


def face_of(portrait: Portrait) -> str:
    """The photographed face a portrait shows (its source without the mirror mark)."""
    return portrait.source.removesuffix(":mirror")


def pool_faces(portraits: list[Portrait]) -> list[str]:
    """The photographed faces of a portrait pool, in the pool's order."""
    return list(dict.fromkeys(face_of(p) for p in portraits))


def face_pool(portraits: list[Portrait], n_faces: int | None) -> list[Portrait]:
    """The portraits of the pool's first ``n_faces`` faces (each with its mirror); all for None.

    Raises ``ValueError`` when the installed packages hold fewer faces than asked for.
    """
    if n_faces is None:
        return portraits
    faces = pool_faces(portraits)
    if n_faces > len(faces):
        raise ValueError(
            f"dataset.synthetic.n_faces is {n_faces} but the installed packages' photos give "
            f"{len(faces)} usable faces ({', '.join(faces)}); lower n_faces or set it to null"
        )
    keep = set(faces[:n_faces])
    return [p for p in portraits if face_of(p) in keep]


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
        y = np.clip(x**self.gamma * self.contrast + self.brightness, 0, 1)
        table = np.stack([np.clip(y * g, 0, 1) for g in self.white_balance], 1)
        return np.round(table * 255).astype(np.uint8)[:, None, :]
