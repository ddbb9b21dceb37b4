"""Levenberg-Marquardt on the fitter's objective, using the problem's block structure.

The unknowns of one video are per-frame blocks ``x_i = [expression, jaw, rotation,
translation]``, shape deviations ``d_g`` (one row per frame with ``fit.shape: per_frame``,
per window with ``per_window``) and the video-level block ``z``: the mean shape ``mu`` and,
with ``fit.landmark_offset_sd > 0``, the detector's constant offset ``b`` of each iBUG-68
landmark; frame ``i`` sees the shape ``mu + d_g(i)``. The Gauss-Newton matrix of the objective in
:mod:`facedyn.flame.fit` (robust data term by iteratively reweighted least squares, priors,
temporal smoothness) is therefore block-diagonal in the frames, plus the smoothness term's
coupling of consecutive frames, plus the video block's arrow. It is never formed as one matrix: the
damped system is solved by preconditioned conjugate gradients whose matrix-vector product
uses the blocks (per-frame ``H_xx``, ``H_xs``, ``H_ss`` built from
:class:`facedyn.flame.jacobian.LandmarkJacobian`), with the blocks' inverses as the
preconditioner. Everything is batched over frames and runs on any torch device.

torch ships no (batched, device-agnostic) PCG or LM; scipy's run on the CPU only, so this
small implementation is written here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from facedyn.flame.jacobian import LandmarkJacobian

#: Parameter scales of the smoothness priors on rotation (rad) and translation (m).
ROT_SMOOTH_SCALE = 0.05
TRANS_SMOOTH_SCALE = 0.01


@dataclass
class Problem:
    """One video's fitting problem, in the objective's own units (see ``facedyn.flame.fit``)."""

    target: torch.Tensor  # (M, 68, 2) pixels
    sigma: torch.Tensor  # (M,) pixels: landmark_sigma x inter-ocular distance
    weight: torch.Tensor  # (68,) per-landmark weight
    contiguous: torch.Tensor  # (M - 1,) bool: consecutive sampled frames, smoothed
    window: torch.Tensor  # (M,) long: shape-deviation row of each frame
    n_rows: int  # shape-deviation rows
    focal: float
    cx: float
    cy: float
    huber: float
    jaw_sd: float
    shape_frame_sd: float
    smooth_expr: float
    smooth_pose: float
    iod: torch.Tensor | None = None  # (M,) pixels: the frame's inter-ocular distance
    offset_sd: float = 0.0  # prior sd of the detector offsets (inter-ocular units); 0: none

    @property
    def offsets(self) -> bool:
        """Whether the detector's per-landmark offsets are unknowns."""
        return self.offset_sd > 0


#: Landmarks with a detector offset: the iBUG-68 (dense points share the network's errors
#: but would make the video block too large for a dense solve).
N_OFFSET = 68


@dataclass
class Params:
    """Physical parameters: ``shape_mean`` (1, S), ``shape`` (rows, S), per-frame blocks
    (M, .) and ``offset`` (68, 2): the detector's constant error per landmark, in
    inter-ocular distances (zero and unused without ``Problem.offsets``)."""

    shape_mean: torch.Tensor
    shape: torch.Tensor
    expr: torch.Tensor
    jaw: torch.Tensor
    rot: torch.Tensor
    trans: torch.Tensor
    offset: torch.Tensor

    def frame_block(self) -> torch.Tensor:
        return torch.cat([self.expr, self.jaw, self.rot, self.trans], 1)

    def with_step(
        self, dx: torch.Tensor, dd: torch.Tensor | None, dz: torch.Tensor | None, n_expr: int
    ) -> Params:
        """Params moved by a step: ``dx`` per frame, ``dd`` shape rows, ``dz`` the video block
        (mean shape, then the offsets when the step has them)."""
        x = self.frame_block() + dx
        expr, jaw, rot, trans = x.split([n_expr, 3, 3, 3], 1)
        mean, offset = self.shape_mean, self.offset
        if dz is not None:
            n_shape = mean.shape[1]
            mean = mean + dz[None, :n_shape]
            if len(dz) > n_shape:
                offset = offset + dz[n_shape:].view_as(offset)
        return Params(
            mean, self.shape if dd is None else self.shape + dd, expr, jaw, rot, trans, offset
        )


def offset_shift(problem: Problem, params: Params) -> torch.Tensor:
    """The landmarks' shift by the detector offsets, (M, L, 2) pixels (zero without them);
    the residual is ``projection - (target - shift)``."""
    shift = torch.zeros_like(problem.target)
    if problem.offsets:
        shift[:, :N_OFFSET] = problem.iod[:, None, None] * params.offset[None]
    return shift


class _System:
    """The damped Gauss-Newton system ``(H + lambda D) v = -g`` of one LM iteration."""

    def __init__(
        self, problem: Problem, params: Params, jac: LandmarkJacobian, use_shape: bool
    ) -> None:
        p, pr = params, problem
        m, n_expr, n_shape = p.expr.shape[0], p.expr.shape[1], p.shape.shape[1]
        self.m, self.n_expr, self.n_shape, self.use_shape = m, n_expr, n_shape, use_shape
        self.window, self.n_rows = pr.window, pr.n_rows
        self.per_frame_rows = pr.n_rows == m and bool(
            (pr.window == torch.arange(m, device=pr.window.device)).all()
        )
        shape = p.shape_mean + p.shape[pr.window]
        if not use_shape:
            shape = torch.zeros_like(shape)
        proj, d_beta, d_pose = jac(shape, p.expr, p.jaw, p.rot, p.trans, pr.focal, pr.cx, pr.cy)
        self.offsets = use_shape and pr.offsets
        err = proj - pr.target + (offset_shift(pr, p) if self.offsets else 0.0)
        r2 = (err**2).sum(-1) / pr.sigma[:, None] ** 2
        # IRLS weight of the pseudo-Huber data term: its derivative in r^2.
        w = pr.weight * torch.rsqrt(1 + r2 / pr.huber**2) / (m * pr.sigma[:, None] ** 2)
        # The normal equations in float64: their blocks' condition grows as LM converges.
        err, w = err.double(), w.double()
        jx = torch.cat([d_beta[..., n_shape:], d_pose], -1).double()  # (M, 68, 2, P)
        js = d_beta[..., :n_shape].double()
        p = Params(**{k: v.double() for k, v in vars(p).items()})
        wjx = jx * w[..., None, None]
        self.hxx = torch.einsum("blcp,blcq->bpq", wjx, jx)
        self.gx = torch.einsum("blcp,blc->bp", wjx, err)
        # Priors (diagonal): expression ~ N(0, 1), jaw ~ N(0, jaw_sd^2), per frame.
        prior = torch.zeros(jx.shape[-1], dtype=err.dtype, device=err.device)
        prior[:n_expr] = 1.0 / m
        prior[n_expr : n_expr + 3] = 1.0 / (m * pr.jaw_sd**2)
        self.hxx = self.hxx + torch.diag(prior)
        self.gx = self.gx + p.frame_block() * prior
        # Smoothness: c * |x_{i+1} - x_i|^2 per contiguous pair, c per parameter.
        n_pairs = max(int(pr.contiguous.sum()), 1)
        c = torch.zeros_like(prior)
        c[:n_expr] = pr.smooth_expr / n_pairs
        c[n_expr : n_expr + 3] = pr.smooth_pose / (n_pairs * pr.jaw_sd**2)
        c[n_expr + 3 : n_expr + 6] = pr.smooth_pose / (n_pairs * ROT_SMOOTH_SCALE**2)
        c[n_expr + 6 :] = pr.smooth_pose / (n_pairs * TRANS_SMOOTH_SCALE**2)
        self.c = c if m > 1 else torch.zeros_like(c)
        self.pair = pr.contiguous.to(err.dtype)[:, None]
        self.gx = self.gx + self._laplacian(p.frame_block())
        degree = torch.zeros(m, dtype=err.dtype, device=err.device)
        if m > 1:
            degree[:-1] += self.pair[:, 0]
            degree[1:] += self.pair[:, 0]
        self.smooth_diag = degree[:, None] * self.c
        if use_shape:
            self.hxs = torch.einsum("blcp,blcs->bps", wjx, js)
            wjs = js * w[..., None, None]
            self.hss = torch.einsum("blcs,blct->bst", wjs, js)
            gs = torch.einsum("blcs,blc->bs", wjs, err)
            self.prior_d = 1.0 / (m * pr.shape_frame_sd**2)
            self.gd = self._rows(gs) + self.prior_d * p.shape
            # The video block z: its couplings with the frame blocks (hxz), with the shape
            # rows (hdz, per frame) and with itself (hzz, summed over frames).
            self.hxz, self.hdz, self.hzz = self.hxs, self.hss, self.hss.sum(0)
            self.prior_z = torch.full((n_shape,), 1.0 / m, dtype=err.dtype, device=err.device)
            self.gz = gs.sum(0) + self.prior_z * p.shape_mean[0]
            if self.offsets:
                # d err / d offset = iod per frame, on the offset landmark's own coordinate.
                iod = pr.iod.double()[:, None, None, None]
                hxb = (wjx[:, :N_OFFSET] * iod).flatten(1, 2).transpose(1, 2)  # (M, P, 2K)
                hsb = (wjs[:, :N_OFFSET] * iod).flatten(1, 2).transpose(1, 2)  # (M, S, 2K)
                hbb = (w[:, :N_OFFSET] * pr.iod.double()[:, None] ** 2).sum(0).repeat_interleave(2)
                self.hxz = torch.cat([self.hxs, hxb], 2)
                self.hdz = torch.cat([self.hss, hsb], 2)
                hsb_sum = hsb.sum(0)
                self.hzz = torch.cat(
                    [torch.cat([self.hzz, hsb_sum], 1), torch.cat([hsb_sum.T, torch.diag(hbb)], 1)],
                    0,
                )
                prior_b = torch.full(
                    (2 * N_OFFSET,), 1.0 / (m * pr.offset_sd**2), dtype=err.dtype, device=err.device
                )
                gb = (iod[..., 0] * w[:, :N_OFFSET, None] * err[:, :N_OFFSET]).sum(0).reshape(-1)
                self.prior_z = torch.cat([self.prior_z, prior_b])
                self.gz = torch.cat([self.gz, gb + prior_b * p.offset.reshape(-1)])

    def _rows(self, per_frame: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(
            (self.n_rows, *per_frame.shape[1:]), dtype=per_frame.dtype, device=per_frame.device
        )
        return out.index_add_(0, self.window, per_frame)

    def _laplacian(self, v: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(v)
        if self.m > 1:
            diff = (v[1:] - v[:-1]) * self.pair * self.c
            out[:-1] -= diff
            out[1:] += diff
        return out

    def gradient(self) -> list[torch.Tensor]:
        return [self.gx, self.gd, self.gz] if self.use_shape else [self.gx]

    def matvec(self, v: list[torch.Tensor], damping: list[torch.Tensor]) -> list[torch.Tensor]:
        vx = v[0]
        out_x = torch.einsum("bpq,bq->bp", self.hxx, vx) + self._laplacian(vx)
        out = [out_x]
        if self.use_shape:
            vd, vz = v[1], v[2]
            vdf = vd[self.window]
            out_x += torch.einsum("bps,bs->bp", self.hxs, vdf) + self.hxz @ vz
            t = (
                torch.einsum("bps,bp->bs", self.hxs, vx)
                + torch.einsum("bst,bt->bs", self.hss, vdf)
                + self.hdz @ vz
            )
            out_z = (
                torch.einsum("bpz,bp->z", self.hxz, vx)
                + torch.einsum("bsz,bs->z", self.hdz, vdf)
                + self.hzz @ vz
                + self.prior_z * vz
            )
            out += [self._rows(t) + self.prior_d * vd, out_z]
        return [o + d * x for o, d, x in zip(out, damping, v, strict=True)]

    def diagonals(self) -> list[torch.Tensor]:
        """Diagonal of H per block (Marquardt's damping scales with it)."""
        dx = torch.diagonal(self.hxx, dim1=1, dim2=2) + self.smooth_diag
        if not self.use_shape:
            return [dx]
        hss_rows = self._rows(self.hss)
        dd = torch.diagonal(hss_rows, dim1=1, dim2=2) + self.prior_d
        dz = torch.diagonal(self.hzz) + self.prior_z
        return [dx, dd, dz]

    def preconditioner(
        self, damping: list[torch.Tensor]
    ) -> Callable[[list[torch.Tensor]], list[torch.Tensor]]:
        """Block-Jacobi: the inverse of every frame's, every shape row's and the mean
        video block's own damped block (Cholesky)."""
        eye_x = torch.diag_embed(self.smooth_diag + damping[0])
        blocks = [torch.linalg.cholesky(self.hxx + eye_x)]
        if self.use_shape:
            rows = self._rows(self.hss) + torch.diag_embed(self.prior_d + damping[1])
            mean = self.hzz + torch.diag(self.prior_z + damping[2])
            blocks += [torch.linalg.cholesky(rows), torch.linalg.cholesky(mean)]

        def apply(r: list[torch.Tensor]) -> list[torch.Tensor]:
            out = [torch.cholesky_solve(r[0][..., None], blocks[0])[..., 0]]
            if self.use_shape:
                out.append(torch.cholesky_solve(r[1][..., None], blocks[1])[..., 0])
                out.append(torch.cholesky_solve(r[2][:, None], blocks[2])[:, 0])
            return out

        return apply

    def solve(
        self, damping: list[torch.Tensor], cg_iterations: int, tol: float = 1e-6
    ) -> list[torch.Tensor]:
        """The damped step. With one shape row per frame, each frame's shape deviation is
        eliminated exactly first (it sees only its own frame and the video block), and CG runs
        on the per-frame blocks and the video block alone; otherwise CG on everything."""
        grad = self.gradient()
        if not (self.use_shape and self.per_frame_rows):

            def matvec(v: list[torch.Tensor]) -> list[torch.Tensor]:
                return self.matvec(v, damping)

            step, _ = conjugate_gradient(
                matvec,
                [-g for g in grad],
                self.preconditioner(damping),
                max_iter=cg_iterations,
                tol=tol,
            )
            return step
        gx, gd, gz = grad
        # K_i = (H_ss,i + prior + damping)^-1; the reduced blocks (Schur complements).
        k = torch.cholesky_inverse(
            torch.linalg.cholesky(self.hss + torch.diag_embed(self.prior_d + damping[1]))
        )
        hxs_k = self.hxs @ k  # (M, P, S)
        hdz_k = k @ self.hdz  # (M, S, Z)
        a = self.hxx - hxs_k @ self.hxs.transpose(1, 2)
        b = self.hxz - self.hxs @ hdz_k
        c = (
            self.hzz
            - (self.hdz.transpose(1, 2) @ hdz_k).sum(0)
            + torch.diag(self.prior_z + damping[2])
        )
        kg = torch.einsum("bst,bt->bs", k, gd)
        rhs = [
            -gx + torch.einsum("bps,bs->bp", self.hxs, kg),
            -gz + torch.einsum("bsz,bs->z", self.hdz, kg),
        ]

        def reduced(v: list[torch.Tensor]) -> list[torch.Tensor]:
            vx, vz = v
            out_x = (
                torch.einsum("bpq,bq->bp", a, vx) + self._laplacian(vx) + damping[0] * vx + b @ vz
            )
            return [out_x, torch.einsum("bpz,bp->z", b, vx) + c @ vz]

        block_x = torch.cholesky_inverse(
            torch.linalg.cholesky(a + torch.diag_embed(self.smooth_diag + damping[0]))
        )
        block_m = torch.cholesky_inverse(torch.linalg.cholesky(c))

        def precondition(r: list[torch.Tensor]) -> list[torch.Tensor]:
            return [torch.einsum("bpq,bq->bp", block_x, r[0]), block_m @ r[1]]

        (dx, dz), _ = conjugate_gradient(
            reduced, rhs, precondition, max_iter=cg_iterations, tol=tol
        )
        dd = -torch.einsum(
            "bst,bt->bs", k, gd + torch.einsum("bps,bp->bs", self.hxs, dx) + self.hdz @ dz
        )
        return [dx, dd, dz]


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b, strict=True))


def conjugate_gradient(
    matvec: Callable[[list[torch.Tensor]], list[torch.Tensor]],
    rhs: list[torch.Tensor],
    precondition: Callable[[list[torch.Tensor]], list[torch.Tensor]],
    max_iter: int = 100,
    tol: float = 1e-6,
) -> tuple[list[torch.Tensor], int]:
    """Preconditioned CG for a symmetric positive-definite operator on lists of tensors.
    Stops when the residual's norm falls below ``tol`` times the right-hand side's."""
    x = [torch.zeros_like(b) for b in rhs]
    r = [b.clone() for b in rhs]
    z = precondition(r)
    p = [t.clone() for t in z]
    rz = _dot(r, z)
    stop = tol * torch.sqrt(_dot(rhs, rhs))
    for it in range(1, max_iter + 1):
        ap = matvec(p)
        curvature = _dot(p, ap)
        if not bool(curvature > 0):  # converged to round-off (or lost definiteness)
            return x, it
        alpha = rz / curvature
        x = [xi + alpha * pi for xi, pi in zip(x, p, strict=True)]
        r = [ri - alpha * api for ri, api in zip(r, ap, strict=True)]
        if torch.sqrt(_dot(r, r)) <= stop:
            return x, it
        z = precondition(r)
        rz_new = _dot(r, z)
        p = [zi + (rz_new / rz) * pi for zi, pi in zip(z, p, strict=True)]
        rz = rz_new
    return x, max_iter


def levenberg_marquardt(
    problem: Problem,
    params: Params,
    jac: LandmarkJacobian,
    value: Callable[[Params, bool], float],
    iterations: int,
    use_shape: bool,
    history: list[float],
    damping: float = 1e-3,
    cg_iterations: int = 100,
) -> Params:
    """``iterations`` Jacobian evaluations of Levenberg-Marquardt from ``params``; ``value``
    is the objective (``facedyn.flame.fit``'s, the one Adam minimises). Appends the objective
    after every iteration to ``history``. With ``use_shape=False`` the shape stays zero."""
    current = value(params, use_shape)
    n_expr = params.expr.shape[1]
    for _ in range(iterations):
        system = _System(problem, params, jac, use_shape)
        diag = system.diagonals()
        for _attempt in range(10):  # else: no step lowers the objective, converged
            step = system.solve([damping * d for d in diag], cg_iterations)
            step = [t.to(params.expr.dtype) for t in step]
            trial = params.with_step(
                step[0], step[1] if use_shape else None, step[2] if use_shape else None, n_expr
            )
            finite = all(bool(torch.isfinite(t).all()) for t in vars(trial).values())
            new = value(trial, use_shape) if finite else float("inf")
            if new < current:
                params, current = trial, new
                damping = max(damping / 3.0, 1e-7)
                break
            damping *= 4.0
        else:
            break
        history.append(current)
    return params
