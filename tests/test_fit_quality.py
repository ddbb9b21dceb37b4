"""Fit-quality measures against the synthetic cohort's truth."""

import numpy as np
import pandas as pd
import pytest

from facedyn.flame.quality import (
    cohort_quality,
    dominant_components,
    expression_modes,
    shape_expression_leak,
    video_quality,
)
from facedyn.tables import write_table


def _tables(seed=0, n=300, noise=0.1, n_expr=6):
    rng = np.random.default_rng(seed)
    frames = np.arange(0, 2 * n, 2)  # the fit samples every second video frame
    truth_frames = np.arange(2 * n)
    sd = np.array([2.0, 1.0, 0.5, 0.05, 0.05, 0.0])[:n_expr]
    true_expr = rng.normal(size=(2 * n, n_expr)) * sd
    shape = rng.normal(size=4)
    truth = pd.DataFrame(
        {
            "frame": truth_frames,
            **{f"expr_{k:03d}": true_expr[:, k] for k in range(n_expr)},
            "jaw_0": np.abs(rng.normal(size=2 * n)) * 0.1,
            "jaw_1": 0.0,
            "jaw_2": 0.0,
            **{f"shape_{k:03d}": shape[k] for k in range(4)},
        }
    )
    sampled = truth.iloc[frames]
    fitted = pd.DataFrame({"frame": frames, "valid": True, "nme": 0.01 + 0.001 * rng.random(n)})
    for k in range(n_expr):
        fitted[f"expr_{k:03d}"] = sampled[f"expr_{k:03d}"].to_numpy() + noise * rng.normal(size=n)
    fitted["jaw_0"] = sampled["jaw_0"].to_numpy() + 0.01 * rng.normal(size=n)
    for k in range(4):
        fitted[f"shape_{k:03d}"] = shape[k] + 0.5 + 0.1 * rng.normal(size=n)
    return fitted, truth


def test_video_quality_matches_on_frames_and_scores_components():
    fitted, truth = _tables()
    comps, scalars = video_quality(fitted, truth, n_shape_truth=4)
    r = comps.set_index("component")["r"]
    assert r["expr_000"] > 0.99 and r["expr_001"] > 0.98
    assert r["expr_003"] < 0.6  # noise larger than the signal
    assert np.isnan(r["expr_005"])  # no variation in the truth
    assert scalars["jaw_open_r"] > 0.9
    assert scalars["shape_rmse"] == pytest.approx(0.5, abs=0.03)  # the 0.5 offset
    assert scalars["frames_matched"] == 300


def test_invalid_frames_are_not_scored():
    fitted, truth = _tables()
    fitted.loc[:99, "valid"] = False
    fitted.loc[:99, "expr_000"] = 1e6  # would destroy r if it were used
    comps, scalars = video_quality(fitted, truth, 4)
    assert scalars["frames_matched"] == 200
    assert comps.set_index("component").loc["expr_000", "r"] > 0.99


def test_tables_of_different_videos_are_an_error():
    fitted, truth = _tables()
    fitted["frame"] += 10_000
    with pytest.raises(ValueError, match="same video"):
        video_quality(fitted, truth)


def test_dominant_components_cover_the_variance_share():
    var = pd.Series({"a": 0.1, "b": 5.0, "c": 3.0, "d": 1.0, "e": 0.9})
    assert dominant_components(var, 0.5) == ["b"]
    assert dominant_components(var, 0.8) == ["b", "c"]
    assert dominant_components(var, 0.9) == ["b", "c", "d"]
    assert dominant_components(var, 1.0) == ["b", "c", "d", "e", "a"]
    with pytest.raises(ValueError):
        dominant_components(var, 0.0)


def _write_pairs(tmp_path, n_videos, noise):
    """(fitted, truth) table paths of ``n_videos`` videos made by :func:`_tables`."""
    pairs = []
    for i in range(n_videos):
        fitted, truth = _tables(seed=i, noise=noise)
        fp, tp = tmp_path / f"fit{i}.parquet", tmp_path / f"truth{i}.parquet"
        write_table(fitted, fp, {"session_id": f"s{i}", "speaker_id": f"p{i}"})
        write_table(truth, tp)
        pairs.append((fp, tp))
    return pairs


def test_cohort_summary_judges_the_dominant_components(tmp_path):
    pairs = _write_pairs(tmp_path, 3, noise=0.3)
    empty = _tables(seed=9)[0].assign(valid=False)
    write_table(empty, tmp_path / "empty.parquet", {"session_id": "s9", "speaker_id": "p9"})
    pairs.append((tmp_path / "empty.parquet", tmp_path / "truth0.parquet"))
    comps, _videos, summary = cohort_quality(pairs, n_shape_truth=4)
    assert summary["videos"] == 4 and summary["videos_fitted"] == 3
    assert (
        summary["dominant_components"]
        == ["expr_000", "expr_001", "expr_002"][: len(summary["dominant_components"])]
    )
    assert summary["dominant_variance_share"] >= 0.9
    by_comp = summary["expression_r_by_component"]
    assert by_comp["expr_000"] > by_comp[summary["dominant_components"][-1]]
    assert 0.9 < summary["jaw_open_r_median"] <= 1.0
    assert set(comps["session_id"]) == {"s0", "s1", "s2"}


def _degenerate_dirs(n_vertices=40, seed=0):
    """Blendshapes where component 2 = -0.5 x component 1 (one mode for both)."""
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(n_vertices, 3, 3))
    dirs[:, :, 2] = -0.5 * dirs[:, :, 1]
    return dirs


def test_expression_modes_merge_coefficients_that_move_the_mesh_alike():
    dirs = _degenerate_dirs()
    modes = expression_modes(dirs)
    assert modes.shape == (2, 3)  # rank 2
    flat = dirs.reshape(-1, 3)
    c1, c2 = np.array([0.3, 1.0, 0.0]), np.array([0.3, 0.0, -2.0])
    np.testing.assert_allclose(flat @ c1, flat @ c2)  # the same displacement ...
    np.testing.assert_allclose(modes @ c1, modes @ c2)  # ... is the same mode vector
    # Modes are metres along orthonormal directions: their norm is the displacement's.
    np.testing.assert_allclose(np.linalg.norm(modes @ c1), np.linalg.norm(flat @ c1))


def test_mode_r_sees_through_a_degenerate_basis():
    """A fit that puts the motion of component 2 into component 1 (same displacement) is
    wrong per component and right per mode."""
    dirs = _degenerate_dirs()
    fitted, truth = _tables(n_expr=3, noise=0.01)
    moved = truth["expr_002"].to_numpy()
    truth["expr_001"] = 0.0
    frames = fitted["frame"].to_numpy()
    fitted["expr_001"] = -0.5 * moved[frames]  # component 2's motion as component 1
    fitted["expr_002"] = 0.0
    comps, _ = video_quality(fitted, truth, 4, modes=expression_modes(dirs))
    r = comps.set_index("component")["r"]
    assert np.isnan(r["expr_002"]) or abs(r["expr_002"]) < 0.2
    assert {"mode_000", "mode_001"} <= set(r.index)
    modal = comps[comps["component"].str.startswith("mode_")]
    top = modal.sort_values("truth_sd").iloc[-1]
    assert top["r"] > 0.99


def test_cohort_summary_reports_dominant_modes(tmp_path):
    modes = expression_modes(np.random.default_rng(1).normal(size=(30, 3, 6)))
    pairs = _write_pairs(tmp_path, 2, noise=0.05)
    _, _, summary = cohort_quality(pairs, n_shape_truth=4, modes=modes)
    assert summary["dominant_modes"] and summary["dominant_modes_variance_share"] >= 0.9
    assert all(c.startswith("expr_") for c in summary["dominant_components"])
    assert 0.9 < summary["expression_mode_r_median"] <= 1.0


def _leak_videos(coupling: float, n_speakers: int = 10, sessions: int = 3, seed: int = 0):
    """Per-video means: the expression error of component 0 is ``coupling`` x shape 0 plus
    noise; component 1's error is noise alone."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_speakers):
        shape = rng.normal(size=4)
        for _ in range(sessions):
            rows.append(
                {
                    "speaker_id": f"p{s}",
                    **{f"shape:shape_{k:03d}": shape[k] for k in range(4)},
                    "err:expr_000": coupling * shape[0] + 0.1 * rng.normal(),
                    "err:expr_001": 0.1 * rng.normal(),
                }
            )
    return pd.DataFrame(rows)


def test_shape_leak_sees_expression_errors_that_follow_the_shape():
    leak = shape_expression_leak(_leak_videos(coupling=1.0))
    assert leak["expr_000"] > 0.8  # the error is a function of the shape
    assert leak["expr_001"] < 0.2  # noise: the shape predicts nothing of it
    assert shape_expression_leak(_leak_videos(coupling=0.0))["expr_000"] < 0.2
    assert shape_expression_leak(_leak_videos(coupling=1.0, n_speakers=3)) == {}  # too few


def test_cohort_summary_reports_the_shape_leak(tmp_path):
    pairs = _write_pairs(tmp_path, 5, noise=0.3)
    _, videos, summary = cohort_quality(pairs, n_shape_truth=4)
    assert {"err:expr_000", "err:jaw_0", "shape:shape_000"} <= set(videos.columns)
    assert set(summary["shape_leak_r2_by_component"]) <= {*summary["dominant_components"], "jaw_0"}
    assert np.isfinite(summary["shape_leak_r2_median"])


def test_stage_pairs_each_table_with_its_truth_and_writes_the_outputs(tmp_path, monkeypatch):
    """``run_fit_quality``: the truth of ``flame/{session}/{speaker}.parquet`` is the frames
    table of the same ids; the head's expression modes come from model.json's ``model``."""
    import json

    import facedyn.flame.quality as Q
    from facedyn.tables import read_table

    pairs, paths = [], []
    for i in range(2):
        fitted, truth = _tables(seed=i, noise=0.05)
        fp = tmp_path / "flame" / f"s{i}" / f"p.{i}.parquet"
        tp = tmp_path / "frames" / f"s{i}" / f"p.{i}.parquet"
        write_table(fitted, fp, {"session_id": f"s{i}", "speaker_id": f"p.{i}"})
        write_table(truth, tp)
        pairs.append((fp, tp))
        paths.append(str(fp))
    model_json = tmp_path / "model.json"
    model_json.write_text(json.dumps({"model": "head.npz"}))
    modes = expression_modes(np.random.default_rng(1).normal(size=(30, 3, 6)))
    asked = []
    monkeypatch.setattr(Q, "head_expression_modes", lambda p: asked.append(p) or modes)
    outputs = {k: tmp_path / "out" / f"{k}.{ext}" for k, ext in _STAGE_OUTPUTS.items()}
    summary = Q.run_fit_quality(
        paths, tmp_path / "frames", model_json, outputs, 4, provenance={"config_hash": "c0"}
    )
    assert asked == ["head.npz"]
    components, videos, expected = cohort_quality(pairs, 4, modes=modes)
    written_summary = json.loads(outputs["summary"].read_text())
    assert set(written_summary) == set(summary) == {*expected, "provenance"}
    for key in ("videos_fitted", "dominant_components", "dominant_modes"):
        assert written_summary[key] == summary[key] == expected[key]
    assert summary["expression_r_median"] == pytest.approx(expected["expression_r_median"])
    assert written_summary["provenance"] == summary["provenance"] == {"config_hash": "c0"}
    for key, table in (("components", components), ("videos", videos)):
        written, meta = read_table(outputs[key])
        pd.testing.assert_frame_equal(written, table, check_dtype=False)
        assert meta["provenance"] == {"config_hash": "c0"}


_STAGE_OUTPUTS = {"components": "parquet", "videos": "parquet", "summary": "json"}
