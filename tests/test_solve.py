"""Levenberg-Marquardt fitting: structured Jacobians, the Gauss-Newton system, the solver."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import jacfwd

from facedyn.flame import load_flame, write_synthetic_flame
from facedyn.flame.camera import focal_from_fov, project
from facedyn.flame.fit import FitSettings, fit_landmarks, objective
from facedyn.flame.jacobian import LandmarkJacobian, project_landmarks
from facedyn.flame.solve import Params, Problem, _System, conjugate_gradient


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    head = write_synthetic_flame(tmp_path_factory.mktemp("head"), n_shape=10, n_expr=10)
    flame = load_flame(
        head["model"], n_shape=10, n_expr=10, landmark_embedding=head["landmark_embedding"]
    )
    return flame.landmark_model().double()


def _params(m: int, rows: int, seed: int = 0) -> Params:
    g = torch.Generator().manual_seed(seed)

    def rnd(*size: int, scale: float = 1.0) -> torch.Tensor:
        return scale * torch.randn(*size, generator=g, dtype=torch.float64)

    trans = torch.tensor([[0.0, -0.02, -0.55]], dtype=torch.float64).repeat(m, 1)
    jaw = torch.abs(rnd(m, 3, scale=0.1)) * torch.tensor([1.0, 0.1, 0.1], dtype=torch.float64)
    return Params(
        shape_mean=rnd(1, 10, scale=0.7),
        shape=rnd(rows, 10, scale=0.2),
        expr=rnd(m, 10, scale=0.7),
        jaw=jaw,
        rot=rnd(m, 3, scale=0.25),
        trans=trans + rnd(m, 3, scale=0.01),
        offset=rnd(68, 2, scale=0.02),
    )


def test_jacobian_matches_autodiff(fast):
    p = _params(5, 5)
    shape = p.shape_mean + p.shape
    proj, d_beta, d_pose = LandmarkJacobian(fast)(
        shape, p.expr, p.jaw, p.rot, p.trans, 300.0, 159.5, 119.5
    )
    torch.testing.assert_close(
        proj, project_landmarks(fast, shape, p.expr, p.jaw, p.rot, p.trans, 300.0, 159.5, 119.5)
    )
    for i in range(5):

        def one(beta, pose, i=i):
            return project_landmarks(
                fast,
                beta[None, :10],
                beta[None, 10:],
                pose[None, :3],
                pose[None, 3:6],
                pose[None, 6:],
                300.0,
                159.5,
                119.5,
            )[0]

        jb, jp = jacfwd(one, argnums=(0, 1))(
            torch.cat([shape[i], p.expr[i]]), torch.cat([p.jaw[i], p.rot[i], p.trans[i]])
        )
        torch.testing.assert_close(d_beta[i], jb, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(d_pose[i], jp, rtol=1e-9, atol=1e-7)


def _problem(
    fast, p: Params, window: torch.Tensor, n_rows: int, seed: int = 1, offset_sd: float = 0.0
) -> Problem:
    m = len(p.expr)
    with torch.no_grad():
        truth = project_landmarks(
            fast, p.shape_mean + p.shape[window], p.expr, p.jaw, p.rot, p.trans, 300.0, 159.5, 119.5
        )
    g = torch.Generator().manual_seed(seed)
    target = truth + 2.0 * torch.randn(truth.shape, generator=g, dtype=torch.float64)
    iod = torch.linalg.norm(target[:, 36] - target[:, 45], dim=1)
    contiguous = torch.ones(m - 1, dtype=torch.bool)
    contiguous[m // 2] = False  # a gap: no smoothing across it
    return Problem(
        target=target,
        sigma=0.03 * iod,
        weight=torch.ones(68, dtype=torch.float64),
        contiguous=contiguous,
        window=window,
        n_rows=n_rows,
        focal=300.0,
        cx=159.5,
        cy=119.5,
        huber=2.0,
        jaw_sd=0.15,
        shape_frame_sd=0.3,
        smooth_expr=4.0,
        smooth_pose=4.0,
        iod=iod,
        offset_sd=offset_sd,
    )


@pytest.mark.parametrize("offset_sd", [0.0, 0.03])
@pytest.mark.parametrize("per_window", [False, True])
@pytest.mark.parametrize("use_shape", [False, True])
def test_gauss_newton_gradient_is_the_objectives_gradient(fast, per_window, use_shape, offset_sd):
    m = 8
    window = torch.arange(m) // 3 if per_window else torch.arange(m)
    n_rows = int(window.max()) + 1
    truth = _params(m, n_rows)
    problem = _problem(fast, truth, window, n_rows, offset_sd=offset_sd)
    start = _params(m, n_rows, seed=5)
    leaves = {k: v.clone().requires_grad_(True) for k, v in vars(start).items()}
    loss, _ = objective(problem, Params(**leaves), fast, use_shape)
    loss.backward()
    grad = _System(problem, start, LandmarkJacobian(fast), use_shape).gradient()
    # The system's gradient is half the objective's (Gauss-Newton's 1/2 |r|^2 convention).
    frame = torch.cat([leaves[k].grad for k in ("expr", "jaw", "rot", "trans")], 1)
    torch.testing.assert_close(2 * grad[0], frame, rtol=1e-7, atol=1e-9)
    if use_shape:
        torch.testing.assert_close(2 * grad[1], leaves["shape"].grad, rtol=1e-7, atol=1e-9)
        video = leaves["shape_mean"].grad[0]
        if offset_sd:
            video = torch.cat([video, leaves["offset"].grad.reshape(-1)])
        else:
            assert leaves["offset"].grad is None  # the offsets are not in the objective
        torch.testing.assert_close(2 * grad[2], video, rtol=1e-7, atol=1e-9)


def test_conjugate_gradient_solves_a_block_system():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(12, 12, generator=g, dtype=torch.float64)
    spd = a @ a.T + 12 * torch.eye(12, dtype=torch.float64)
    rhs = torch.randn(12, generator=g, dtype=torch.float64)

    def matvec(v):
        flat = spd @ torch.cat([v[0].reshape(-1), v[1]])
        return [flat[:8].view(4, 2), flat[8:]]

    x, iterations = conjugate_gradient(
        matvec, [rhs[:8].view(4, 2), rhs[8:]], lambda r: r, max_iter=50, tol=1e-12
    )
    torch.testing.assert_close(torch.cat([x[0].reshape(-1), x[1]]), torch.linalg.solve(spd, rhs))
    assert iterations <= 13  # exact arithmetic: at most n steps


def _track(fast, n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 15.0
    shape = np.repeat(rng.normal(0, 0.8, (1, 10)), n, 0)
    expr = 0.8 * np.sin(
        2 * np.pi * (0.3 + 0.1 * np.arange(10))[None] * t[:, None] + rng.uniform(0, 6, 10)
    )
    pose = np.zeros((n, 15))
    pose[:, 1] = 0.2 * np.sin(2 * np.pi * 0.15 * t)
    pose[:, 6] = 0.12 * (1 + np.sin(2 * np.pi * 0.7 * t))
    trans = np.tile([0.0, -0.03, -0.55], (n, 1))
    f = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        lmk = project(
            fast(f(shape), f(expr), f(pose), kind="2d"),
            f(trans),
            focal_from_fov(320, 60.0),
            159.5,
            119.5,
        ).numpy()
    return lmk, t, expr, pose


def test_lm_reaches_a_lower_objective_than_adam(tmp_path_factory):
    head = write_synthetic_flame(tmp_path_factory.mktemp("head32"), n_shape=10, n_expr=10)
    model = load_flame(
        head["model"], n_shape=10, n_expr=10, landmark_embedding=head["landmark_embedding"]
    ).landmark_model()
    lmk, t, expr, pose = _track(model)
    frames = np.arange(len(t))
    adam = fit_landmarks(lmk, frames, t, 320, 240, model, FitSettings(n_shape=10, n_expr=10))
    lm = fit_landmarks(
        lmk, frames, t, 320, 240, model, FitSettings(n_shape=10, n_expr=10, solver="lm")
    )
    assert lm.loss_history[-1] < adam.loss_history[-1]
    assert all(b <= a for a, b in zip(lm.loss_history[4:], lm.loss_history[5:], strict=False))
    assert np.median(lm.nme) < np.median(adam.nme)
    r = [np.corrcoef(lm.expression[:, k], expr[:, k])[0, 1] for k in range(10)]
    assert np.median(r) > 0.85  # the priors' optimum, not the truth: no better than Adam here
    assert np.corrcoef(lm.jaw[:, 0], pose[:, 6])[0, 1] > 0.98
    again = fit_landmarks(
        lmk, frames, t, 320, 240, model, FitSettings(n_shape=10, n_expr=10, solver="lm")
    )
    np.testing.assert_array_equal(lm.expression, again.expression)


def test_unknown_solver_is_rejected():
    with pytest.raises(ValueError, match=r"fit\.solver"):
        FitSettings(solver="newton")


@pytest.mark.parametrize("offset_sd", [0.0, 0.03])
@pytest.mark.parametrize("per_window", [False, True])
def test_damped_step_solves_the_whole_system(fast, per_window, offset_sd):
    """The structured solve (per-frame elimination of the shape rows, then CG) gives the
    solution of the whole damped Gauss-Newton system assembled densely."""
    m = 6
    window = torch.arange(m) // 2 if per_window else torch.arange(m)
    n_rows = int(window.max()) + 1
    problem = _problem(fast, _params(m, n_rows), window, n_rows, offset_sd=offset_sd)
    system = _System(problem, _params(m, n_rows, seed=3), LandmarkJacobian(fast), True)
    damping = [1e-2 * d for d in system.diagonals()]
    step = system.solve(damping, cg_iterations=2000, tol=1e-13)
    shapes = [g.shape for g in system.gradient()]
    sizes = [int(np.prod(s)) for s in shapes]

    def unflat(v):
        return [t.reshape(s) for t, s in zip(torch.split(v, sizes), shapes, strict=True)]

    n = sum(sizes)
    dense = torch.stack(
        [
            torch.cat([t.reshape(-1) for t in system.matvec(unflat(e), damping)])
            for e in torch.eye(n, dtype=torch.float64)
        ],
        1,
    )
    torch.testing.assert_close(dense, dense.T, rtol=1e-8, atol=1e-10)
    rhs = -torch.cat([g.reshape(-1) for g in system.gradient()])
    expected = torch.linalg.solve(dense, rhs)
    torch.testing.assert_close(
        torch.cat([t.reshape(-1) for t in step]), expected, rtol=1e-5, atol=1e-7
    )
