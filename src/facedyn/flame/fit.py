"""Per-frame FLAME parameters from 2D landmark tracks: batched, device-agnostic fitting.

Status (issue 5, open): runs as ``rule fit_flame``; it fits landmarks and recovers jaw and
head pose; per-component expression recovery from detected landmarks is the open problem
documented in docs/fitting.md.

All valid frames of a video are fitted together as one batched problem on the device,
through the landmark-only fast path (:class:`facedyn.flame.model.FLAMELandmarks`).

Camera: the pinhole of :mod:`facedyn.flame.camera`, principal point at the image centre,
focal length ``0.5 * width / tan(fov / 2)`` (``fit.fov_deg``, 60 degrees by default: a
typical webcam); the head's distance absorbs the remaining scale.

Unknowns per frame: shape (``n_shape``; shared per window with ``shape: per_window``),
expression (``n_expr``), jaw (3), global head rotation (3, axis-angle) and translation (3).
Neck and eyes stay at zero (2D landmarks cannot separate neck from global rotation).

Objective (sum over valid frames):

* data: robust (pseudo-Huber) reprojection error of the 68 landmarks (yaw-dependent contour),
  in units of ``sigma`` = ``fit.landmark_sigma`` x the frame's inter-ocular distance, so
  that the balance against the priors does not depend on the face's size in pixels; the 17
  jaw-line landmarks weighted by ``fit.contour_weight``;
* priors: ``|shape|^2 + |expression|^2`` (coefficients are N(0, 1) by construction of
  FLAME's and the synthetic head's bases) and ``|jaw / fit.jaw_sd|^2``;
* temporal smoothness: squared differences of expression, jaw, rotation and translation
  between consecutive sampled frames (never across a gap of invalid frames), weighted by
  ``fit.smooth_*``.

Solver: Adam on all frames at once with a cosine-decayed step, first on pose, jaw and
expression (``fit.rigid_iterations``, default 30), then on everything (``fit.iterations``,
default 60). Parameters
are scaled so one step moves each by a comparable amount. Adam was chosen over
Gauss-Newton because the batched gradient costs one forward and one backward pass of the
fast path per iteration whatever the number of unknowns; ``benchmarks/fit.py`` measures
the speed against a frame-by-frame full-mesh reference and the accuracy against truth.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from facedyn.flame.camera import focal_from_fov, project
from facedyn.flame.model import FLAMELandmarks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSettings:
    """Fitting options (``fit.*`` in the config)."""

    n_shape: int = 100
    n_expr: int = 50
    shape: str = "per_frame"  # or "per_window"
    window_s: float = 4.0
    iterations: int = 60
    rigid_iterations: int = 30
    lr: float = 0.05
    landmark_sigma: float = 0.03
    huber: float = 2.0
    contour_weight: float = 1.0
    jaw_sd: float = 0.15
    shape_frame_sd: float = 0.3
    smooth_expr: float = 4.0
    smooth_pose: float = 4.0
    fov_deg: float = 60.0
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.shape not in ("per_frame", "per_window"):
            raise ValueError(f"fit.shape must be 'per_frame' or 'per_window', got {self.shape!r}")


@dataclass
class FitResult:
    """Fitted parameters for the valid frames (row i of every array = valid frame i)."""

    shape: np.ndarray  # (M, n_shape)
    expression: np.ndarray  # (M, n_expr)
    jaw: np.ndarray  # (M, 3)
    rotation: np.ndarray  # (M, 3)
    translation: np.ndarray  # (M, 3)
    focal: float
    rmse_px: np.ndarray  # (M,)
    nme: np.ndarray  # (M,) mean landmark error / inter-ocular distance
    loss_history: list[float]
    settings: dict[str, Any]


def _segments(frames: np.ndarray) -> np.ndarray:
    """Boolean (M-1,): True where valid frame i+1 directly follows frame i (no gap)."""
    if len(frames) < 2:
        return np.zeros(0, dtype=bool)
    step = np.median(np.diff(frames))
    return np.diff(frames) <= 1.5 * step


def _window_ids(times: np.ndarray, window_s: float) -> np.ndarray:
    return np.floor((times - times.min()) / window_s).astype(np.int64)


def _pseudo_huber(x2: torch.Tensor, delta: float) -> torch.Tensor:
    """Pseudo-Huber of squared residuals ``x2`` (quadratic near 0, linear beyond ``delta``)."""
    return 2 * delta**2 * (torch.sqrt(1 + x2 / delta**2) - 1)


def _initial_pose(lmk: np.ndarray, model_lmk: np.ndarray, focal: float, cx: float, cy: float
                  ) -> np.ndarray:
    """Translation per frame from the landmarks' centre and size (rotation starts at 0)."""
    iod_img = np.linalg.norm(lmk[:, 36] - lmk[:, 45], axis=1)
    iod_model = float(np.linalg.norm(model_lmk[36, :2] - model_lmk[45, :2]))
    depth = focal * iod_model / np.maximum(iod_img, 1e-3)
    centre_img = lmk[:, 17:].mean(1)
    centre_model = model_lmk[17:].mean(0)
    tx = (centre_img[:, 0] - cx) * depth / focal - centre_model[0]
    ty = -(centre_img[:, 1] - cy) * depth / focal - centre_model[1]
    tz = -depth - centre_model[2]
    return np.stack([tx, ty, tz], 1)


def project_landmarks(model: FLAMELandmarks, shape: torch.Tensor, expression: torch.Tensor,
                      jaw: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor,
                      focal: float | torch.Tensor, cx: float, cy: float) -> torch.Tensor:
    """The fitter's image landmarks (B, 68, 2) for per-frame parameters: global rotation and
    jaw posed (neck and eyes at zero), yaw-dependent contour, pinhole camera. The one
    definition shared by the objective and by anything that redraws a fitted table."""
    pose = torch.cat([rotation, torch.zeros_like(rotation), jaw,
                      torch.zeros(len(rotation), 6, dtype=rotation.dtype,
                                  device=rotation.device)], 1)
    return project(model(shape, expression, pose, kind="2d"), translation, focal, cx, cy)


def fit_landmarks(landmarks: np.ndarray, frames: np.ndarray, times: np.ndarray, width: int,
                  height: int, model: FLAMELandmarks, settings: FitSettings) -> FitResult:
    """Fit FLAME to valid frames' 2D landmarks (all frames given must be valid).

    Args:
        landmarks: (M, 68, 2) pixels, no NaN.
        frames: (M,) source frame indices (gaps break temporal smoothing).
        times: (M,) seconds (windows of ``per_window`` shape).
        width, height: image size.
        model: the landmark fast path, already on the target device and dtype.
        settings: options.
    """
    if len(landmarks) == 0:
        raise ValueError("no valid frames to fit")
    if not np.isfinite(landmarks).all():
        raise ValueError("landmarks of the frames to fit must be finite")
    torch.manual_seed(settings.seed)
    dev = model.v_template.device
    dtype = model.v_template.dtype
    m = len(landmarks)
    focal = focal_from_fov(width, settings.fov_deg)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    target = torch.as_tensor(landmarks, dtype=dtype, device=dev)
    iod = torch.linalg.norm(target[:, 36] - target[:, 45], dim=1).clamp_min(1.0)
    sigma = (settings.landmark_sigma * iod)[:, None]
    # Jaw-line (contour) landmarks follow the silhouette, which detectors and the model's
    # yaw-dependent embedding define differently; contour_weight < 1 trusts them less.
    weight = torch.ones(68, dtype=dtype, device=dev)
    weight[:17] = settings.contour_weight
    with torch.no_grad():
        neutral = model(pose=torch.zeros(1, 15, dtype=dtype, device=dev), kind="3d")[0]
    trans0 = _initial_pose(landmarks, neutral.cpu().numpy(), focal, cx, cy)

    window_ids = (np.arange(m) if settings.shape == "per_frame"
                  else _window_ids(times, settings.window_s))
    n_shape_rows = int(window_ids.max()) + 1
    window = torch.as_tensor(window_ids, device=dev)
    # Scaled parameters: one Adam step moves each by a comparable physical amount.
    scale = {"shape_mean": 1.0, "shape": settings.shape_frame_sd, "expr": 1.0, "jaw": 0.1,
             "rot": 0.1, "trans": 0.02}
    params = {
        "shape_mean": torch.zeros(1, settings.n_shape, dtype=dtype, device=dev),
        "shape": torch.zeros(n_shape_rows, settings.n_shape, dtype=dtype, device=dev),
        "expr": torch.zeros(m, settings.n_expr, dtype=dtype, device=dev),
        "jaw": torch.zeros(m, 3, dtype=dtype, device=dev),
        "rot": torch.zeros(m, 3, dtype=dtype, device=dev),
        "trans": torch.as_tensor(trans0, dtype=dtype, device=dev) / scale["trans"],
    }
    for p in params.values():
        p.requires_grad_(True)
    contiguous = torch.as_tensor(_segments(frames), device=dev)
    n_pairs = max(int(contiguous.sum()), 1)

    def unpack() -> dict[str, torch.Tensor]:
        return {k: params[k] * scale[k] for k in params}

    def objective(use_shape: bool) -> tuple[torch.Tensor, torch.Tensor]:
        p = unpack()
        shape = p["shape_mean"] + p["shape"][window]
        if not use_shape:
            shape = torch.zeros_like(shape)
        proj = project_landmarks(model, shape, p["expr"], p["jaw"], p["rot"], p["trans"],
                                 focal, cx, cy)
        r2 = ((proj - target) ** 2).sum(-1) / sigma**2
        data = (_pseudo_huber(r2, settings.huber) * weight).sum() / m
        # Hierarchical shape prior: the video's mean shape ~ N(0, I); each frame (or window)
        # deviates from it by N(0, shape_frame_sd^2): estimated per frame, yet anchored.
        shape_prior = ((p["shape_mean"] ** 2).sum() / m
                       + ((p["shape"] / settings.shape_frame_sd) ** 2).sum() / m)
        prior = (shape_prior * (1.0 if use_shape else 0.0)
                 + (p["expr"] ** 2).sum() / m + ((p["jaw"] / settings.jaw_sd) ** 2).sum() / m)
        smooth = torch.zeros((), dtype=dtype, device=dev)
        if m > 1:
            def d2(x: torch.Tensor) -> torch.Tensor:
                return (((x[1:] - x[:-1]) ** 2).sum(-1) * contiguous).sum() / n_pairs
            smooth = (settings.smooth_expr * d2(p["expr"])
                      + settings.smooth_pose * (d2(p["jaw"] / settings.jaw_sd)
                                                + d2(p["rot"] / 0.05) + d2(p["trans"] / 0.01)))
        return data + prior + smooth, proj

    history: list[float] = []

    def run(names: list[str], iterations: int, use_shape: bool) -> None:
        if iterations <= 0:
            return
        opt = torch.optim.Adam([params[k] for k in names], lr=settings.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations, settings.lr * 0.05)
        for _ in range(iterations):
            opt.zero_grad(set_to_none=True)
            loss, _ = objective(use_shape)
            loss.backward()
            opt.step()
            sched.step()
            history.append(float(loss.detach()))

    run(["rot", "trans", "jaw", "expr"], settings.rigid_iterations, use_shape=False)
    run(list(params), settings.iterations, use_shape=True)

    with torch.no_grad():
        _, proj = objective(True)
        err = torch.linalg.norm(proj - target, dim=-1)
        p = unpack()
        shape = p["shape_mean"] + p["shape"][window]
    return FitResult(
        shape=shape.cpu().numpy(), expression=p["expr"].detach().cpu().numpy(),
        jaw=p["jaw"].detach().cpu().numpy(), rotation=p["rot"].detach().cpu().numpy(),
        translation=p["trans"].detach().cpu().numpy(), focal=float(focal),
        rmse_px=torch.sqrt((err**2).mean(1)).cpu().numpy(),
        nme=(err.mean(1) / iod).cpu().numpy(), loss_history=history,
        settings=asdict(settings),
    )
