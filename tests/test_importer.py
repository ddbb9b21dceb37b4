"""Importing per-frame FLAME parameters from other trackers (fit.backend: import)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from facedyn.flame.importer import TrackerImportError, import_npz
from facedyn.flame.table import JAW_COLUMNS, ROT_COLUMNS, expr_columns, shape_columns


def _deca(n: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "shape": rng.normal(size=(n, 100)),
        "expression": rng.normal(size=(n, 50)),
        "pose": rng.normal(scale=0.2, size=(n, 6)),
        "cam": rng.normal(size=(n, 3)),
    }


def test_deca_round_trip(tmp_path):
    arrays = _deca()
    path = tmp_path / "v.npz"
    np.savez(path, **arrays)
    out = import_npz(path, n_shape=100, n_expr=50, fps=15, tracker="deca")
    t = out.table
    np.testing.assert_allclose(t[expr_columns(50)].to_numpy(), arrays["expression"])
    np.testing.assert_allclose(t[shape_columns(100)].to_numpy(), arrays["shape"])
    np.testing.assert_allclose(t[JAW_COLUMNS].to_numpy(), arrays["pose"][:, 3:])
    np.testing.assert_allclose(t[ROT_COLUMNS].to_numpy(), arrays["pose"][:, :3])
    np.testing.assert_allclose(t[["cam_s", "cam_tx", "cam_ty"]].to_numpy(), arrays["cam"])
    assert t["valid"].all() and t["tz"].isna().all() and t["nme"].isna().all()
    np.testing.assert_allclose(t["time_s"], np.arange(12) / 15)
    assert out.metadata["camera"] == "weak_perspective" and len(out.metadata["source_sha256"]) == 64


def test_fewer_components_requested_are_truncated(tmp_path):
    np.savez(tmp_path / "v.npz", **_deca())
    t = import_npz(tmp_path / "v.npz", n_shape=20, n_expr=10, fps=30).table
    assert "shape_019" in t and "shape_020" not in t and "expr_010" not in t


def test_vggheads_6d_rotation_and_translation(tmp_path):
    n = 5
    rot = Rotation.from_rotvec(np.random.default_rng(1).normal(scale=0.3, size=(n, 3)))
    mats = rot.as_matrix()
    r6 = np.concatenate([mats[:, :, 0], mats[:, :, 1]], 1)
    np.savez(
        tmp_path / "v.npz",
        expression=np.zeros((n, 100)),
        jaw=np.zeros((n, 3)),
        rotation_6d=r6,
        shape=np.ones(300),
        translation=np.tile([0, 0, -0.6], (n, 1)),
        frame=np.arange(0, 10, 2),
    )
    t = import_npz(tmp_path / "v.npz", n_shape=300, n_expr=100, fps=30).table
    np.testing.assert_allclose(t[ROT_COLUMNS].to_numpy(), rot.as_rotvec(), atol=1e-9)
    assert (t["shape_000"] == 1).all() and (t["tz"] == -0.6).all()
    assert t["frame"].tolist() == [0, 2, 4, 6, 8]


def test_nan_rows_become_invalid_not_invented(tmp_path):
    arrays = _deca()
    arrays["expression"][3] = np.nan
    arrays["valid"] = np.ones(12, bool)
    arrays["valid"][5] = False
    np.savez(tmp_path / "v.npz", **arrays)
    t = import_npz(tmp_path / "v.npz", 100, 50, 15).table
    assert t["valid"].tolist().count(False) == 2
    assert t.loc[[3, 5], expr_columns(50)].isna().all().all()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda a: a.pop("expression"), "'expression' .* is required"),
        (lambda a: a.update(cam=a["cam"][:-1]), "'cam' has 11 rows but 'expression' has 12"),
        (lambda a: a.update(pose=a["pose"][:, :5]), r"'pose' must be \(N, 6\)"),
        (lambda a: (a.pop("pose"), a.update(rotation=np.zeros((12, 3)))), "give 'jaw'"),
        (lambda a: a.update(expression=a["expression"][:, :10]), "has 10 coefficients.*n_expr"),
        (lambda a: a.update(frame=np.zeros(12)), "strictly increasing"),
    ],
)
def test_errors_name_the_problem(tmp_path, edit, message):
    arrays = _deca()
    edit(arrays)
    np.savez(tmp_path / "v.npz", **arrays)
    with pytest.raises(TrackerImportError, match=message):
        import_npz(tmp_path / "v.npz", 100, 50, 15)


def test_unreadable_file_and_unknown_arrays(tmp_path, caplog):
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(TrackerImportError, match="not a readable"):
        import_npz(tmp_path / "bad.npz", 100, 50, 15)
    arrays = _deca()
    np.savez(
        tmp_path / "v.npz", **arrays, eyelid=np.zeros((12, 2)), landmarks=np.zeros((12, 68, 2))
    )
    with caplog.at_level(logging.WARNING):
        import_npz(tmp_path / "v.npz", 100, 50, 15)
    assert "landmarks" in caplog.text and "eyelid" not in caplog.text
