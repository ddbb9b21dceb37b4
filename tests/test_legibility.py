"""Landmark legibility: facial measures, per-video and cohort scores against the truth, the
summary page's section and the figure."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from facedyn.face import legibility as L
from facedyn.face.ibug import landmark_nme
from facedyn.plots import figures as F
from facedyn.tables import read_table, write_table

SHIFT = np.array([3.0, 4.0])  # 5 px


def _face() -> np.ndarray:
    """A frontal iBUG-68 face in pixels: IOD 50 px (outer eye corners at x 100 and 150)."""
    p = np.zeros((68, 2))
    p[:17] = np.stack(
        [np.linspace(90, 160, 17), 130 + 50 * np.sin(np.linspace(0, np.pi, 17))], axis=1
    )  # jaw line, chin (8) at the bottom
    p[17:22] = np.stack([np.linspace(98, 118, 5), np.full(5, 85.0)], axis=1)
    p[22:27] = np.stack([np.linspace(132, 152, 5), np.full(5, 85.0)], axis=1)
    p[27:36] = [125, 110]
    # eyes: corners on y = 100, upper lids 2 px above, lower lids 2 px below
    p[36], p[39], p[42], p[45] = [100, 100], [115, 100], [135, 100], [150, 100]
    p[[37, 38, 43, 44], 1], p[[40, 41, 46, 47], 1] = 98, 102
    for pair, x in (((37, 41), 105), ((38, 40), 110), ((43, 47), 140), ((44, 46), 145)):
        p[list(pair), 0] = x
    # mouth: corners 48/54 25 px apart; inner lips (upper 61-63, lower 65-67) 5 px apart
    p[48], p[54], p[60], p[64] = [112.5, 150], [137.5, 150], [115, 150], [135, 150]
    p[49:54] = np.stack([np.linspace(116, 134, 5), np.full(5, 146.0)], axis=1)
    p[55:60] = np.stack([np.linspace(134, 116, 5), np.full(5, 156.0)], axis=1)
    p[61:64] = np.stack([[120, 125, 130], np.full(3, 147.5)], axis=1)
    p[65:68] = np.stack([[130, 125, 120], np.full(3, 152.5)], axis=1)
    return p


def _rotate(p: np.ndarray, angle: float, scale: float = 1.0, shift=(0.0, 0.0)) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return p @ np.array([[c, -s], [s, c]]).T * scale + np.asarray(shift)


# --------------------------------------------------------------------------- measures


def test_measures_of_a_hand_made_face():
    m = L.landmark_measures(_face()).iloc[0]
    assert m["mouth_opening"] == pytest.approx(5 / 50)
    assert m["mouth_width"] == pytest.approx(25 / 50)
    assert m["brow_height"] == pytest.approx(15 / 50)  # eye centre y 100, brows y 85
    assert m["eye_opening"] == pytest.approx(4 / 50)


@pytest.mark.parametrize(
    ("angle", "scale", "shift"),
    [(0.4, 1.0, (0, 0)), (-1.2, 2.5, (30, -7)), (np.pi, 0.6, (300, 200))],
)
def test_measures_ignore_scale_rotation_and_position(angle, scale, shift):
    base = L.landmark_measures(_face())
    moved = L.landmark_measures(_rotate(_face(), angle, scale, shift))
    pd.testing.assert_frame_equal(moved, base, atol=1e-9, check_exact=False)


def test_mirrored_face_keeps_down_towards_the_chin():
    mirrored = _face() * [-1, 1]  # eye corner 36 now to the right of 45
    pd.testing.assert_frame_equal(
        L.landmark_measures(mirrored), L.landmark_measures(_face()), atol=1e-12, check_exact=False
    )


def test_lips_through_each_other_give_a_negative_opening():
    p = _face()
    p[65:68, 1], p[61:64, 1] = 148.0, 151.0  # lower inner lip 3 px above the upper one
    m = L.landmark_measures(_rotate(p, 0.3, 1.7)).iloc[0]
    assert m["mouth_opening"] == pytest.approx(-3 / 50)
    p[[40, 41, 46, 47], 1] = 97.0  # lower lids above the upper ones
    assert L.landmark_measures(p).iloc[0]["eye_opening"] == pytest.approx(-1 / 50)


def test_rigid_head_motion_is_removed_over_a_video():
    """A video whose head moves (turns in the image plane, comes closer, drifts) while the
    mouth opens gives the measures of the same expressions without the motion, although the
    opening mouth moves points that a per-frame eye-corner distance would not catch either."""
    rng = np.random.default_rng(0)
    frames, moved = [], []
    for k in range(12):
        p = _face()
        p[27:31] = np.stack([np.full(4, 125.0), np.linspace(100, 118, 4)], axis=1)  # bridge
        p[31:36] = np.stack([np.linspace(117, 133, 5), np.full(5, 122.0)], axis=1)  # base
        p[65:68, 1] += k  # the mouth opens by k px
        p[[48, 54], 0] += np.array([-1.0, 1.0]) * 0.5 * k  # and widens
        frames.append(p)
        moved.append(
            _rotate(p, rng.uniform(-0.5, 0.5), rng.uniform(0.7, 1.6), rng.uniform(-40, 40, 2))
        )
    still = L.landmark_measures(np.array(frames))
    pd.testing.assert_frame_equal(
        L.landmark_measures(np.array(moved)), still, atol=1e-9, check_exact=False
    )
    assert still["mouth_opening"].iloc[-1] == pytest.approx((5 + 11) / 50)
    # Noise on one eye corner moves a per-frame IOD; the thirteen rigid points barely notice.
    noisy = np.array(frames)
    noisy[:, 45, 0] += rng.normal(0, 2.0, len(noisy))
    width = L.landmark_measures(noisy)["mouth_width"]
    per_frame_iod = np.linalg.norm(noisy[:, 54] - noisy[:, 48], axis=1) / np.linalg.norm(
        noisy[:, 45] - noisy[:, 36], axis=1
    )
    truth = still["mouth_width"]
    assert np.abs(width - truth).mean() < 0.5 * np.abs(per_frame_iod - truth).mean()


def test_measures_of_many_frames_and_missing_landmarks():
    faces = np.stack([_face(), _face(), np.full((68, 2), np.nan)])
    faces[1, 65:68, 1] += 5.0  # lower lip 5 px further down
    m = L.landmark_measures(faces)
    assert list(m.columns) == list(L.MEASURES) and len(m) == 3
    assert m["mouth_opening"].iloc[1] == pytest.approx(10 / 50)
    assert m.iloc[2].isna().all()
    with pytest.raises(ValueError, match="68, 2"):
        L.landmark_measures(np.zeros((3, 5, 2)))


def test_nme_is_mean_distance_over_the_reference_iod():
    p = _face()
    assert L.nme(p, p) == 0.0
    assert L.nme(p + SHIFT, p) == pytest.approx(5 / 50)
    both = L.nme(np.stack([p + SHIFT, p]), np.stack([p, p]))
    np.testing.assert_allclose(both, [0.1, 0.0])
    tiny = np.zeros((68, 2))  # coinciding eye corners: the IOD is clamped to 1 px
    assert L.nme(tiny + np.array([0.0, 2.0]), tiny) == pytest.approx(2.0)
    # the one-frame NME the landmark-frame figure writes is this one
    assert landmark_nme(p + SHIFT, p) == pytest.approx(0.1)


# --------------------------------------------------------------------------- one video


def _animated(n: int, seed: int = 0) -> np.ndarray:
    """(n, 68, 2) faces whose mouth, brows and lids move independently, head moving too."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    faces = np.repeat(_face()[None], n, axis=0)
    jaw = 6 * (1 + np.sin(t / 7.0)) + rng.uniform(0, 2, n)  # mouth opening, px
    faces[:, 55:60, 1] += jaw[:, None]
    faces[:, 65:68, 1] += jaw[:, None]
    faces[:, 8, 1] += jaw
    smile = 4 * np.sin(t / 11.0 + 1) + rng.normal(0, 0.5, n)
    faces[:, 48, 0] -= smile
    faces[:, 54, 0] += smile
    brow = 3 * np.sin(t / 5.0 + 2) + rng.normal(0, 0.3, n)
    faces[:, 17:27, 1] -= brow[:, None]
    blink = np.clip(np.sin(t / 3.0), 0, 1)
    faces[:, [40, 41, 46, 47], 1] -= 4.5 * blink[:, None]  # the 4 px lid gap closes past zero
    out = np.empty_like(faces)
    for k in range(n):  # head roll, scale and position change frame by frame
        out[k] = _rotate(
            faces[k], 0.2 * np.sin(k / 13.0), 1 + 0.1 * np.cos(k / 17.0), (5 * np.sin(k / 9.0), 0.0)
        )
    return out


def _truth_table(xy: np.ndarray) -> pd.DataFrame:
    cols = {"frame": np.arange(len(xy)), "time_s": np.arange(len(xy)) / 30.0}
    cols.update({f"lx{k:02d}": xy[:, k, 0] for k in range(68)})
    cols.update({f"ly{k:02d}": xy[:, k, 1] for k in range(68)})
    return pd.DataFrame(cols)


def _landmark_table(
    xy: np.ndarray, every: int = 2, noise: float = 0.0, missing=(), seed: int = 1
) -> pd.DataFrame:
    """A landmark table sampling every ``every``-th frame of ``xy``; ``missing`` sampled rows
    have no face."""
    rng = np.random.default_rng(seed)
    frames = np.arange(0, len(xy), every)
    pts = xy[frames] + rng.normal(0, noise, (len(frames), 68, 2))
    detected = np.ones(len(frames), bool)
    detected[list(missing)] = False
    pts[~detected] = np.nan
    cols = {
        "frame": frames,
        "time_s": frames / 30.0,
        "detected": detected,
        "tracked": False,
        "score": 1.0,
    }
    cols.update({f"lx{k:02d}": pts[:, k, 0] for k in range(68)})
    cols.update({f"ly{k:02d}": pts[:, k, 1] for k in range(68)})
    return pd.DataFrame(cols)


def test_perfect_detector_reads_every_measure():
    xy = _animated(300)
    res = L.video_legibility(_landmark_table(xy), _truth_table(xy))
    assert set(res) == set(L.video_columns())
    for m in L.MEASURES:
        assert res[f"{m}_r"] == pytest.approx(1.0, abs=1e-9), m
    assert res["nme_median"] == 0.0
    assert res["detection_rate"] == 1.0
    assert res["frames_sampled"] == res["frames_detected"] == res["frames_matched"] == 150
    # the truth's own statistics: the lids close past zero, the mouth never does
    assert res["eye_opening_truth_min"] < 0 < res["eye_opening_truth_p95"]
    assert 0 < res["mouth_opening_truth_min"] <= res["mouth_opening_truth_p05"]
    assert res["mouth_opening_truth_sd"] > 0.02


def test_noisy_detector_reads_less():
    xy = _animated(300)
    truth = _truth_table(xy)
    clean = L.video_legibility(_landmark_table(xy, noise=0.3), truth)
    noisy = L.video_legibility(_landmark_table(xy, noise=2.0), truth)
    for m in L.MEASURES:
        assert noisy[f"{m}_r"] < clean[f"{m}_r"] < 1.0, m
    assert 0 < clean["nme_median"] < noisy["nme_median"]
    assert noisy["nme_median"] == pytest.approx(2.0 * np.sqrt(np.pi / 2) / 50, rel=0.15)
    # the truth's statistics do not depend on the detector
    assert noisy["mouth_opening_truth_sd"] == clean["mouth_opening_truth_sd"]


def test_missing_detections_lower_the_rate_not_the_scores():
    xy = _animated(300)
    res = L.video_legibility(_landmark_table(xy, missing=range(0, 150, 5)), _truth_table(xy))
    assert res["detection_rate"] == pytest.approx(0.8)
    assert res["frames_matched"] == 120
    assert res["mouth_opening_r"] == pytest.approx(1.0)


def test_frame_errors_are_per_detected_frame_and_map_the_truth():
    xy = _animated(60)
    truth = _truth_table(xy)
    exact = _landmark_table(xy, every=3, missing=(2, 5))
    errors = L.frame_errors(exact, truth)
    assert errors.shape == (20 - 2,) and np.allclose(errors, 0.0)
    noisy = _landmark_table(xy, every=3, noise=1.0, missing=(2, 5))
    errors = L.frame_errors(noisy, truth)
    assert len(errors) == 18 and (errors > 0).all()
    # the same as the legibility's own NME over the detected frames
    assert np.median(errors) == pytest.approx(L.video_legibility(noisy, truth)["nme_median"])
    # a video resized by 0.5: the truth is mapped to its pixels (centres at integers)
    half = _landmark_table((xy + 0.5) * 0.5 - 0.5, every=3)
    assert np.allclose(L.frame_errors(half, truth, factor=0.5), 0.0)
    assert (L.frame_errors(half, truth) > 0.1).all()


def test_constant_truth_or_few_frames_give_nan_r():
    still = np.repeat(_face()[None], 40, axis=0)
    res = L.video_legibility(_landmark_table(still), _truth_table(still))
    assert all(np.isnan(res[f"{m}_r"]) for m in L.MEASURES)
    assert res["nme_median"] == 0.0
    xy = _animated(40)
    two = L.video_legibility(_landmark_table(xy, missing=range(2, 20)), _truth_table(xy))
    assert two["frames_matched"] == 2 and np.isnan(two["mouth_opening_r"])


def test_tables_of_different_videos_are_an_error():
    xy = _animated(60)
    lmk = _landmark_table(xy)
    lmk["frame"] += 1000
    with pytest.raises(ValueError, match="same video"):
        L.video_legibility(lmk, _truth_table(xy))


# --------------------------------------------------------------------------- cohort


def _write_pair(root, session, speaker, lmk, truth, status="ok"):
    ids = {"session_id": session, "speaker_id": speaker}
    lmk_path = root / "landmarks" / session / f"{speaker}.parquet"
    truth_path = root / "truth" / session / f"{speaker}.parquet"
    write_table(lmk, lmk_path, {**ids, "status": status})
    write_table(truth, truth_path, ids)
    return lmk_path, truth_path


def _detected_pairs(root, n_videos: int, frames: int, noise: float, speaker: str) -> list:
    """(landmark table, truth table) paths of videos whose face is found in every frame."""
    pairs = []
    for k in range(n_videos):
        xy = _animated(frames, seed=k)
        pairs.append(
            _write_pair(root, f"s{k}", speaker, _landmark_table(xy, noise=noise), _truth_table(xy))
        )
    return pairs


def test_cohort_rows_summary_and_targets(tmp_path):
    pairs = _detected_pairs(tmp_path, 4, 200, 0.2, "007")
    xy = _animated(200, seed=9)
    no_face = _landmark_table(xy, missing=range(100))
    pairs.append(_write_pair(tmp_path, "s9", "008", no_face, _truth_table(xy), "no_face"))
    videos, summary = L.cohort_legibility(pairs)
    assert list(videos.columns[:3]) == ["session_id", "speaker_id", "status"]
    assert videos["speaker_id"].tolist() == ["007"] * 4 + ["008"]  # ids stay strings
    blind = videos.iloc[-1]
    assert blind["status"] == "no_face" and blind["detection_rate"] == 0
    assert all(np.isnan(blind[f"{m}_r"]) for m in L.MEASURES)
    assert blind["mouth_opening_truth_sd"] > 0  # the truth is described all the same

    assert summary["videos"] == 5 and summary["videos_detected"] == 4
    assert summary["detection_rate"] == pytest.approx(400 / 500)
    assert summary["detection_rate_median"] == 1.0
    assert summary["r_median"]["mouth_opening"] == pytest.approx(videos["mouth_opening_r"].median())
    assert summary["truth"]["eye_opening"]["videos_below_zero"] == 5
    assert summary["truth"]["eye_opening"]["min"] < 0
    targets = summary["targets"]
    assert set(targets) == set(L.TARGETS)
    assert targets["mouth_opening_r"]["met"] and targets["nme"]["met"]
    assert not targets["detection_rate"]["met"]  # one video in five without a face
    assert summary["targets_met"] == 5 and summary["targets_total"] == 6
    json.dumps(summary, allow_nan=False)  # strict JSON: no NaN


def test_check_targets_pass_fail_and_missing_values():
    values = {
        "mouth_opening_r": 0.9,
        "mouth_width_r": 0.84,
        "brow_height_r": None,
        "eye_opening_r": float("nan"),
        "nme": 0.04,
        "detection_rate": 0.99,
    }
    res = L.check_targets(values)
    assert {n: t["met"] for n, t in res.items()} == {
        "mouth_opening_r": True,
        "mouth_width_r": False,
        "brow_height_r": False,
        "eye_opening_r": False,
        "nme": True,
        "detection_rate": True,
    }
    assert res["eye_opening_r"]["value"] is None
    assert res["nme"] == {"op": "<=", "threshold": 0.04, "value": 0.04, "met": True}


def test_empty_cohort_summarises_without_error():
    videos = pd.DataFrame(columns=["session_id", "speaker_id", "status", *L.video_columns()])
    summary = L.summarize_legibility(videos)
    assert summary["videos"] == 0 and summary["detection_rate"] is None
    assert summary["targets_met"] == 0


# --------------------------------------------------------------------------- outputs


def _legibility_json(tmp_path):
    videos, summary = L.cohort_legibility(_detected_pairs(tmp_path, 3, 120, 1.0, "a"))
    write_table(videos, tmp_path / "legibility.parquet", {})
    path = tmp_path / "legibility.json"
    path.write_text(
        json.dumps(
            {**summary, "provenance": {"config_hash": "c0ffee", "facedyn_version": "0.1.0"}},
            sort_keys=True,
        )
    )  # as facedyn.atomic.atomic_write_json
    return path, summary


def test_summary_page_has_the_legibility_section(tmp_path):
    from facedyn.plots.summary import legibility_section, write_summary

    path, summary = _legibility_json(tmp_path)
    metrics = tmp_path / "main.json"
    metrics.write_text(
        json.dumps({"experiment": "main", "protocol": "cross_session", "models": {}})
    )
    text = write_summary(
        tmp_path / "summary.md", "smoke", [str(metrics)], main="main", legibility=str(path)
    ).read_text()
    r = summary["r_median"]["mouth_opening"]
    assert "## Landmark legibility" in text
    assert f"over 3 videos, median per-video Pearson r: mouth opening {r:.2f}" in text
    assert f"NME median {summary['nme_median']:.3f}; detection 100.0 % of sampled" in text
    met = summary["targets_met"]
    assert f"Targets met: {met} of 6" in text and "detection \u2265 98 %" in text
    assert f"| `{path}` | 0.1.0 | `c0ffee` |" in text  # its provenance is listed
    # the JSON file sorts its keys; the page lists the targets in TARGETS order
    assert text.index("mouth opening r \u2265") < text.index("NME \u2264")
    fake = {
        "videos": 2,
        "measures": ["mouth_opening"],
        "r_median": {"mouth_opening": None},
        "nme_median": 0.05,
        "detection_rate": 1.0,
        "targets": L.check_targets({"nme": 0.05, "detection_rate": 1.0}),
    }
    line = "\n".join(legibility_section(fake))
    assert "mouth opening n/a" in line
    assert (
        "Targets met: 1 of 6 (detection \u2265 98 %); not met: mouth opening r \u2265 0.9;" in line
    )
    assert "NME \u2264 0.04." in line


def test_legibility_figure(tmp_path):
    from facedyn.plots.stage import run_legibility_figure

    path, summary = _legibility_json(tmp_path)
    videos = pd.read_parquet(tmp_path / "legibility.parquet")
    fig = F.legibility(videos, summary, "smoke · 3 videos")
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["mouth\nopening", "mouth\nwidth", "brow\nheight", "eye\nopening"]
    assert len(fig.axes[0].collections) >= 4 + 4  # a strip and a target line per measure
    written = run_legibility_figure(
        tmp_path / "legibility.parquet", path, tmp_path / "fig", cohort="smoke"
    )
    assert [p.name for p in written] == ["legibility.png", "legibility.pdf"]
    assert all(p.stat().st_size > 1000 for p in written)


def test_stage_pairs_each_table_with_its_truth_and_writes_the_outputs(tmp_path):
    """``run_legibility``: the truth of ``landmarks/{session}/{speaker}.parquet`` is the
    frames table of the same ids; both outputs carry the provenance."""
    pairs = _detected_pairs(tmp_path, 3, 120, 0.5, "a.1")
    outputs = {"videos": tmp_path / "out/legibility.parquet", "summary": tmp_path / "out/l.json"}
    summary = L.run_legibility(
        [str(lmk) for lmk, _ in pairs], tmp_path / "truth", outputs, {"config_hash": "c0"}
    )
    expected_videos, expected = L.cohort_legibility(pairs)
    assert summary["r_median"] == expected["r_median"] and summary["videos"] == 3
    assert json.loads(outputs["summary"].read_text()) == summary
    assert summary["provenance"] == {"config_hash": "c0"}
    videos, meta = read_table(outputs["videos"])
    pd.testing.assert_frame_equal(videos, expected_videos, check_dtype=False)
    assert meta["provenance"] == {"config_hash": "c0"}
