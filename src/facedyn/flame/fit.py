"""Per-frame FLAME parameters from 2D landmark tracks: batched, device-agnostic fitting.

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
  jaw-line landmarks weighted by ``fit.contour_weight``; with a dense embedding
  (``flame.dense_embedding``) also the detector's dense points, each weighted by
  ``fit.dense_weight``;
* priors: ``|shape|^2 + |expression|^2`` (coefficients are N(0, 1) by construction of
  FLAME's and the synthetic head's bases) and ``|jaw / fit.jaw_sd|^2``;
* detector offsets (with ``fit.landmark_offset_sd > 0``): a constant error per iBUG-68
  landmark and video, in inter-ocular distances, is an unknown under an
  N(0, landmark_offset_sd^2) prior counted once per video; the data term compares the
  projection with the landmarks minus their offset, so that the video's mean shape need not
  absorb what the detector gets wrong the same way in every frame;
* temporal smoothness: squared differences of expression, jaw, rotation and translation
  between consecutive sampled frames (never across a gap of invalid frames), weighted by
  ``fit.smooth_*``.

Solvers (``fit.solver``): ``adam``, Adam on scaled parameters (one step moves each by a
comparable amount) with a cosine-decayed step, first on pose, jaw and expression
(``fit.rigid_iterations``), then on everything (``fit.iterations``); ``lm``,
Levenberg-Marquardt on the problem's block structure (:mod:`facedyn.flame.solve`). Both
minimise :func:`objective`. ``benchmarks/fit.py`` measures the speed against a
frame-by-frame full-mesh reference, docs/fitting.md the objective each solver reaches.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.optim.adam import adam as adam_update

from facedyn.face.ibug import MIN_IOD_PX, inter_ocular, nme
from facedyn.flame.camera import focal_from_fov
from facedyn.flame.jacobian import LandmarkJacobian, project_landmarks
from facedyn.flame.model import FLAMELandmarks
from facedyn.flame.solve import (
    N_OFFSET,
    ROT_SMOOTH_SCALE,
    TRANS_SMOOTH_SCALE,
    Params,
    Problem,
    levenberg_marquardt,
    offset_shift,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSettings:
    """Fitting options (``fit.*`` in the config)."""

    n_shape: int = 100
    n_expr: int = 50
    shape: str = "per_frame"  # or "per_window"
    solver: str = "adam"  # or "lm" (Levenberg-Marquardt, facedyn.flame.solve)
    window_s: float = 4.0
    iterations: int = 60
    rigid_iterations: int = 30
    lr: float = 0.05
    lm_iterations: int = 12
    lm_rigid_iterations: int = 4
    landmark_sigma: float = 0.03
    huber: float = 2.0
    contour_weight: float = 1.0
    dense_weight: float = 0.25
    jaw_sd: float = 0.15
    shape_frame_sd: float = 0.3
    landmark_offset_sd: float = 0.0
    smooth_expr: float = 4.0
    smooth_pose: float = 4.0
    fov_deg: float = 60.0
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.shape not in ("per_frame", "per_window"):
            raise ValueError(f"fit.shape must be 'per_frame' or 'per_window', got {self.shape!r}")
        if self.solver not in ("adam", "lm"):
            raise ValueError(f"fit.solver must be 'adam' or 'lm', got {self.solver!r}")


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


def _initial_pose(
    lmk: np.ndarray, model_lmk: np.ndarray, focal: float, cx: float, cy: float
) -> np.ndarray:
    """Translation per frame from the landmarks' centre and size (rotation starts at 0)."""
    iod_img = inter_ocular(lmk)
    iod_model = float(inter_ocular(model_lmk[:, :2]))
    depth = focal * iod_model / np.maximum(iod_img, 1e-3)
    centre_img = lmk[:, 17:].mean(1)
    centre_model = model_lmk[17:].mean(0)
    tx = (centre_img[:, 0] - cx) * depth / focal - centre_model[0]
    ty = -(centre_img[:, 1] - cy) * depth / focal - centre_model[1]
    tz = -depth - centre_model[2]
    return np.stack([tx, ty, tz], 1)


def fit_landmarks(
    landmarks: np.ndarray,
    frames: np.ndarray,
    times: np.ndarray,
    width: int,
    height: int,
    model: FLAMELandmarks,
    settings: FitSettings,
) -> FitResult:
    """Fit FLAME to valid frames' 2D landmarks (all frames given must be valid).

    Args:
        landmarks: (M, 68 + P, 2) pixels, no NaN: iBUG-68, then the P dense points of the
            model's dense embedding (``facedyn.flame.dense``), if it has one.
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
    iod = inter_ocular(target).clamp_min(MIN_IOD_PX)
    # Jaw-line (contour) landmarks follow the silhouette, which detectors and the model's
    # yaw-dependent embedding define differently; contour_weight < 1 trusts them less.
    weight = torch.full((landmarks.shape[1],), settings.dense_weight, dtype=dtype, device=dev)
    weight[:68] = 1.0
    weight[:17] = settings.contour_weight
    with torch.no_grad():
        neutral = model(pose=torch.zeros(1, 15, dtype=dtype, device=dev), kind="3d")[0]
    if neutral.shape[0] != landmarks.shape[1]:
        raise ValueError(
            f"the model gives {neutral.shape[0]} landmarks, the frames have "
            f"{landmarks.shape[1]}: fit dense points with a dense embedding"
        )
    trans0 = _initial_pose(landmarks[:, :68], neutral[:68].cpu().numpy(), focal, cx, cy)
    window_ids = (
        np.arange(m) if settings.shape == "per_frame" else _window_ids(times, settings.window_s)
    )
    problem = Problem(
        target=target,
        sigma=settings.landmark_sigma * iod,
        weight=weight,
        contiguous=torch.as_tensor(_segments(frames), device=dev),
        window=torch.as_tensor(window_ids, device=dev),
        n_rows=int(window_ids.max()) + 1,
        focal=float(focal),
        cx=cx,
        cy=cy,
        huber=settings.huber,
        jaw_sd=settings.jaw_sd,
        shape_frame_sd=settings.shape_frame_sd,
        smooth_expr=settings.smooth_expr,
        smooth_pose=settings.smooth_pose,
        iod=iod,
        offset_sd=settings.landmark_offset_sd,
    )

    def zeros(rows: int, cols: int) -> torch.Tensor:
        return torch.zeros(rows, cols, dtype=dtype, device=dev)

    start = Params(
        shape_mean=zeros(1, settings.n_shape),
        shape=zeros(problem.n_rows, settings.n_shape),
        expr=zeros(m, settings.n_expr),
        jaw=zeros(m, 3),
        rot=zeros(m, 3),
        trans=torch.as_tensor(trans0, dtype=dtype, device=dev),
        offset=zeros(N_OFFSET, 2),
    )
    history: list[float] = []
    with _subnormals_as_zero():
        fitted = _solve(problem, start, model, settings, history)
    with torch.no_grad():
        _, proj = objective(problem, fitted, model, True)
        err = torch.linalg.norm(proj - target, dim=-1)
        shape = fitted.shape_mean + fitted.shape[problem.window]
        proj_px, target_px = proj.cpu().numpy(), target.cpu().numpy()
    return FitResult(
        shape=shape.cpu().numpy(),
        expression=fitted.expr.detach().cpu().numpy(),
        jaw=fitted.jaw.detach().cpu().numpy(),
        rotation=fitted.rot.detach().cpu().numpy(),
        translation=fitted.trans.detach().cpu().numpy(),
        focal=float(focal),
        rmse_px=torch.sqrt((err**2).mean(1)).cpu().numpy(),
        nme=nme(proj_px, target_px),
        loss_history=history,
        settings=asdict(settings),
    )


@contextlib.contextmanager
def _subnormals_as_zero() -> Iterator[None]:
    """CPU arithmetic treats subnormal floats as zero inside (torch's default, off, after).

    The procedural head's smooth bumps decay to about 1e-45, and a CPU multiplies with such
    numbers far slower than with normal ones: a fit takes 18 % less CPU, and the fitted
    tables stay the same (no subnormal moves a landmark by a representable amount).
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _solve(
    problem: Problem,
    start: Params,
    model: FLAMELandmarks,
    settings: FitSettings,
    history: list[float],
) -> Params:
    """The solver of ``settings.solver`` from ``start`` (loss per iteration into ``history``)."""
    if settings.solver == "adam":
        return _adam(problem, start, model, settings, history)

    def value(p: Params, use_shape: bool) -> float:
        with torch.no_grad():
            return float(objective(problem, p, model, use_shape)[0])

    jac = LandmarkJacobian(model)
    with torch.no_grad():
        fitted = levenberg_marquardt(
            problem, start, jac, value, settings.lm_rigid_iterations, False, history
        )
        return levenberg_marquardt(
            problem, fitted, jac, value, settings.lm_iterations, True, history
        )


def objective(
    problem: Problem, p: Params, model: FLAMELandmarks, use_shape: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fitting objective (module docstring) and the projected landmarks. With
    ``use_shape=False`` the shape is zero and its prior is left out (the rigid stage)."""
    pr, m = problem, len(problem.target)
    shape = p.shape_mean + p.shape[pr.window]
    if not use_shape:
        shape = torch.zeros_like(shape)
    proj = project_landmarks(model, shape, p.expr, p.jaw, p.rot, p.trans, pr.focal, pr.cx, pr.cy)
    offsets = use_shape and pr.offsets
    target = pr.target - offset_shift(pr, p) if offsets else pr.target
    r2 = ((proj - target) ** 2).sum(-1) / pr.sigma[:, None] ** 2
    data = (_pseudo_huber(r2, pr.huber) * pr.weight).sum() / m
    # Hierarchical shape prior: the video's mean shape ~ N(0, I); each frame (or window)
    # deviates from it by N(0, shape_frame_sd^2): estimated per frame, yet anchored.
    shape_prior = (p.shape_mean**2).sum() / m + ((p.shape / pr.shape_frame_sd) ** 2).sum() / m
    prior = (
        shape_prior * (1.0 if use_shape else 0.0)
        + (p.expr**2).sum() / m
        + ((p.jaw / pr.jaw_sd) ** 2).sum() / m
    )
    if offsets:
        # The detector's constant error per landmark ~ N(0, offset_sd^2), once per video.
        prior = prior + ((p.offset / pr.offset_sd) ** 2).sum() / m
    smooth = torch.zeros((), dtype=proj.dtype, device=proj.device)
    if m > 1:
        n_pairs = max(int(pr.contiguous.sum()), 1)

        def d2(x: torch.Tensor) -> torch.Tensor:
            return (((x[1:] - x[:-1]) ** 2).sum(-1) * pr.contiguous).sum() / n_pairs

        smooth = pr.smooth_expr * d2(p.expr) + pr.smooth_pose * (
            d2(p.jaw / pr.jaw_sd) + d2(p.rot / ROT_SMOOTH_SCALE) + d2(p.trans / TRANS_SMOOTH_SCALE)
        )
    return data + prior + smooth, proj


def _adam(
    problem: Problem,
    start: Params,
    model: FLAMELandmarks,
    settings: FitSettings,
    history: list[float],
) -> Params:
    """Adam on scaled parameters (one step moves each by a comparable physical amount),
    first on pose, jaw and expression, then on everything, with a cosine-decayed step."""
    scale = {
        "shape_mean": 1.0,
        "shape": settings.shape_frame_sd,
        "expr": 1.0,
        "jaw": 0.1,
        "rot": 0.1,
        "trans": 0.02,
        "offset": max(settings.landmark_offset_sd, 1e-3),
    }
    params = {k: (getattr(start, k) / scale[k]).clone().requires_grad_(True) for k in scale}

    def unpack() -> Params:
        return Params(**{k: params[k] * scale[k] for k in params})

    def run(names: list[str], iterations: int, use_shape: bool) -> None:
        if iterations <= 0:
            return
        stepper = _CosineAdam([params[k] for k in names], settings.lr, iterations)
        for _ in range(iterations):
            stepper.zero_grad()
            loss, _ = objective(problem, unpack(), model, use_shape)
            loss.backward()
            stepper.step()
            history.append(float(loss.detach()))

    run(["rot", "trans", "jaw", "expr"], settings.rigid_iterations, use_shape=False)
    run(
        [k for k in params if k != "offset" or problem.offsets], settings.iterations, use_shape=True
    )
    with torch.no_grad():
        return Params(**{k: v.detach() for k, v in vars(unpack()).items()})


class _CosineAdam:
    """``torch.optim.Adam`` (default betas and eps) under ``CosineAnnealingLR`` down to 5 % of
    ``lr`` over ``iterations`` steps, through torch's functional Adam update
    (``torch.optim.adam.adam``, which ``Adam.step`` calls) and the schedule's closed form.

    Constructing any ``torch.optim`` optimizer imports ``torch._dynamo``: 0.9 CPU s, a fifth of a
    fit job, paid once per video. The functional update does not import it.
    """

    def __init__(self, params: list[torch.Tensor], lr: float, iterations: int) -> None:
        self.params, self.lr, self.iterations = params, lr, iterations
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        self.exp_avg_sqs = [
            torch.zeros_like(p, memory_format=torch.preserve_format) for p in params
        ]
        scalar = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
        self.steps = [torch.tensor(0.0, dtype=scalar) for _ in params]
        self.done = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        eta_min = self.lr * 0.05
        lr = (
            eta_min
            + (self.lr - eta_min) * (1 + math.cos(math.pi * self.done / self.iterations)) / 2
        )
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        with torch.no_grad():
            adam_update(
                [self.params[i] for i in live],
                [self.params[i].grad for i in live],
                [self.exp_avgs[i] for i in live],
                [self.exp_avg_sqs[i] for i in live],
                [],
                [self.steps[i] for i in live],
                amsgrad=False,
                beta1=0.9,
                beta2=0.999,
                lr=lr,
                weight_decay=0.0,
                eps=1e-8,
                maximize=False,
            )
        self.done += 1
