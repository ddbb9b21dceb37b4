"""The batched landmark fitter and the fit_flame stage: what is already guaranteed
(accuracy targets on detected landmarks are still open, docs/fitting.md)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from facedyn.flame import load_flame, write_synthetic_flame
from facedyn.flame.camera import focal_from_fov, project
from facedyn.flame.fit import FitSettings, _CosineAdam, _subnormals_as_zero, fit_landmarks


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    head = write_synthetic_flame(tmp_path_factory.mktemp("head"), n_shape=10, n_expr=10)
    flame = load_flame(
        head["model"], n_shape=10, n_expr=10, landmark_embedding=head["landmark_embedding"]
    )
    return flame.landmark_model()


def _synthetic_track(fast, n: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 15.0
    shape = np.repeat(rng.normal(0, 0.8, (1, 10)), n, 0)
    expr = 0.8 * np.sin(
        2 * np.pi * (0.3 + 0.1 * np.arange(10))[None] * t[:, None] + rng.uniform(0, 6, 10)
    )
    pose = np.zeros((n, 15))
    pose[:, 0] = 0.1 * np.sin(2 * np.pi * 0.2 * t)
    pose[:, 1] = 0.2 * np.sin(2 * np.pi * 0.15 * t)
    pose[:, 6] = 0.12 * (1 + np.sin(2 * np.pi * 0.7 * t))  # jaw opening
    trans = np.tile([0.0, -0.03, -0.55], (n, 1))
    f = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        lmk3 = fast(f(shape), f(expr), f(pose), kind="2d")
        lmk2 = project(lmk3, f(trans), focal_from_fov(320, 60.0), 159.5, 119.5).numpy()
    return lmk2, t, pose


def test_noise_free_landmarks_are_reproduced_and_pose_recovered(fast):
    lmk2, t, pose = _synthetic_track(fast)
    settings = FitSettings(n_shape=10, n_expr=10, iterations=120, rigid_iterations=40)
    res = fit_landmarks(lmk2, np.arange(len(t)) * 2, t, 320, 240, fast, settings)
    assert np.median(res.nme) < 0.01  # landmarks reproduced to 1 % of the inter-ocular distance
    assert np.corrcoef(res.jaw[:, 0], pose[:, 6])[0, 1] > 0.98
    assert np.corrcoef(res.rotation[:, 1], pose[:, 1])[0, 1] > 0.98  # yaw
    assert res.loss_history[-1] < res.loss_history[0]


def test_fit_is_deterministic_on_cpu(fast):
    lmk2, t, _ = _synthetic_track(fast, n=20)
    settings = FitSettings(n_shape=10, n_expr=10, iterations=20, rigid_iterations=10)
    a = fit_landmarks(lmk2, np.arange(20), t, 320, 240, fast, settings)
    b = fit_landmarks(lmk2, np.arange(20), t, 320, 240, fast, settings)
    np.testing.assert_array_equal(a.expression, b.expression)


def test_per_window_shape_is_shared_within_windows(fast):
    lmk2, t, _ = _synthetic_track(fast, n=60)
    settings = FitSettings(
        n_shape=10, n_expr=10, shape="per_window", window_s=2.0, iterations=20, rigid_iterations=10
    )
    res = fit_landmarks(lmk2, np.arange(60), t, 320, 240, fast, settings)
    windows = np.floor(t / 2.0).astype(int)
    for w in np.unique(windows):
        block = res.shape[windows == w]
        assert np.allclose(block, block[0])
    assert not np.allclose(res.shape[0], res.shape[-1])


def test_bad_input_is_refused(fast):
    with pytest.raises(ValueError, match="no valid frames"):
        fit_landmarks(
            np.zeros((0, 68, 2)),
            np.zeros(0),
            np.zeros(0),
            320,
            240,
            fast,
            FitSettings(n_shape=10, n_expr=10),
        )
    with pytest.raises(ValueError, match="finite"):
        fit_landmarks(
            np.full((2, 68, 2), np.nan),
            np.arange(2),
            np.arange(2.0),
            320,
            240,
            fast,
            FitSettings(n_shape=10, n_expr=10),
        )
    with pytest.raises(ValueError, match="per_frame"):
        FitSettings(shape="per_video")


@pytest.fixture(scope="module")
def model_json(tmp_path_factory):
    from facedyn.flame.head_model import describe_flame_model

    root = tmp_path_factory.mktemp("model")
    head = write_synthetic_flame(root, n_shape=10, n_expr=10)
    describe_flame_model(
        head["model"],
        head["landmark_embedding"],
        root / "model.json",
        n_shape=10,
        n_expr=10,
        synthetic=True,
    )
    return root / "model.json"


def _landmark_table(tmp_path, fast, valid_every: int = 1):
    import pandas as pd

    from facedyn.face.extract import COLUMNS
    from facedyn.tables import write_table

    lmk2, t, _ = _synthetic_track(fast, n=30)
    cols = {
        "frame": np.arange(30) * 2,
        "time_s": t,
        "detected": True,
        "tracked": False,
        "score": 1.0,
        "x0": 0.0,
        "y0": 0.0,
        "x1": 1.0,
        "y1": 1.0,
    }
    cols.update({f"lx{k:02d}": lmk2[:, k, 0] for k in range(68)})
    cols.update({f"ly{k:02d}": lmk2[:, k, 1] for k in range(68)})
    df = pd.DataFrame(cols)
    df.loc[np.arange(30) % valid_every != 0, "detected"] = False
    path = tmp_path / "lmk.parquet"
    write_table(
        df[COLUMNS],
        path,
        {"session_id": "s1", "speaker_id": "1e5", "width": 320, "height": 240, "sampled_fps": 15.0},
    )
    return path


FIT = {
    "backend": "optimize",
    "device": "auto",
    "iterations": 20,
    "rigid_iterations": 10,
    "import": {"dir": None, "tracker": "unknown"},
}


def test_stage_writes_contract_table_with_invalid_frames_kept(tmp_path, fast, model_json):
    from facedyn.flame.stage import run_fit
    from facedyn.tables import read_table

    meta = run_fit(
        _landmark_table(tmp_path, fast, valid_every=3), model_json, tmp_path / "flame.parquet", FIT
    )
    table, stored = read_table(tmp_path / "flame.parquet")
    assert len(table) == 30 and table["valid"].sum() == 10
    assert table.loc[~table["valid"], "expr_000"].isna().all()  # never invented
    for col in (
        "frame",
        "time_s",
        "shape_009",
        "expr_009",
        "jaw_2",
        "rot_2",
        "tx",
        "tz",
        "focal_px",
        "rmse_px",
        "nme",
    ):
        assert col in table
    assert stored["status"] == "ok" and stored["device"] == "cpu" and stored["speaker_id"] == "1e5"
    assert len(stored["model_sha256"]) == 64 and meta["frames_valid"] == 10


def test_stage_without_valid_frames(tmp_path, fast, model_json):
    from facedyn.flame.stage import run_fit
    from facedyn.tables import read_table

    path = _landmark_table(tmp_path, fast)
    table, meta = read_table(path)
    table["detected"] = False
    from facedyn.tables import write_table

    write_table(table, path, meta)
    run_fit(path, model_json, tmp_path / "f.parquet", FIT)
    out, stored = read_table(tmp_path / "f.parquet")
    assert stored["status"] == "no_valid_frames" and not out["valid"].any() and len(out) == 30


def test_stage_import_backend(tmp_path, fast, model_json):
    from facedyn.flame.stage import run_fit
    from facedyn.tables import read_table

    (tmp_path / "deca" / "s1").mkdir(parents=True)
    np.savez(
        tmp_path / "deca" / "s1" / "1e5.npz",
        expression=np.ones((30, 50)),
        pose=np.zeros((30, 6)),
        shape=np.zeros(100),
        frame=np.arange(30) * 2,
    )
    fit = {**FIT, "backend": "import", "import": {"dir": str(tmp_path / "deca"), "tracker": "deca"}}
    run_fit(_landmark_table(tmp_path, fast), model_json, tmp_path / "f.parquet", fit)
    out, stored = read_table(tmp_path / "f.parquet")
    assert stored["tracker"] == "deca" and (out["expr_009"] == 1).all() and "expr_010" not in out


def test_the_fits_adam_steps_exactly_like_torch_optim_adam_under_a_cosine_schedule():
    torch.manual_seed(0)
    target = torch.randn(40, 7)
    start = [torch.randn(40, 7), torch.randn(7), torch.randn(3)]  # the last never gets a grad

    def loss_of(params):
        return ((params[0] * params[1] - target) ** 2).sum() + params[1].abs().sum()

    ours = [p.clone().requires_grad_(True) for p in start]
    theirs = [p.clone().requires_grad_(True) for p in start]
    stepper = _CosineAdam(ours, lr=0.05, iterations=25)
    opt = torch.optim.Adam(theirs, lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 25, 0.05 * 0.05)
    for _ in range(25):
        stepper.zero_grad()
        loss_of(ours).backward()
        stepper.step()
        opt.zero_grad(set_to_none=True)
        loss_of(theirs).backward()
        opt.step()
        sched.step()
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(ours[0], start[0]) and torch.equal(ours[2], start[2])


def test_subnormals_count_as_zero_only_inside_the_fit():
    subnormal = torch.tensor([1e-45])
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormals")
    with _subnormals_as_zero():
        assert float(subnormal * 1.0) == 0.0
    assert float(subnormal * 1.0) > 0.0


def test_the_fits_adam_does_not_import_torch_dynamo():
    """Every torch.optim optimizer imports torch._dynamo (about 0.9 CPU s per fit job)."""
    code = (
        "import sys, torch\n"
        "from facedyn.flame.fit import _CosineAdam\n"
        "p = torch.zeros(3, requires_grad=True)\n"
        "stepper = _CosineAdam([p], 0.1, 2)\n"
        "(p - 1).pow(2).sum().backward()\n"
        "stepper.step()\n"
        "print(float(p[0]) > 0, 'torch._dynamo' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "False"]
