"""The figure library: every figure builds from small synthetic inputs shaped like the real
result tables, and save_figure writes PNG + PDF atomically."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from facedyn.plots import figures as F
from facedyn.plots.style import (
    MODEL_COLORS,
    MODEL_ORDER,
    apply_style,
    figure_style,
    ordered_models,
    save_figure,
)

MODELS = [
    "tcn",
    "chance",
    "appearance_only",
    "conformer",
    "lstm",
    "shape_only",
    "stats_lr",
]  # unordered


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def metrics() -> dict:
    out = {}
    for i, m in enumerate(MODELS):
        top1 = 0.05 + 0.03 * i
        out[m] = {
            "top1": top1,
            "top1_ci": [top1 - 0.03, top1 + 0.04],
            "top5": top1 + 0.3,
            "session_top1": top1,
            "eer": 0.3,
            "min_dcf": 1.0,
            "per_fold_top1": [top1] * 3,
        }
    return {"experiment": "main", "chance": 1 / 32, "models": out}


def _speakers(n: int) -> list[str]:
    return [f"{i:024x}" for i in range(n)]


@pytest.fixture
def dnr_table(rng) -> pd.DataFrame:
    spk = _speakers(12)
    noise = rng.uniform(2, 6, len(spk))
    drift = noise * rng.uniform(1, 6, len(spk))
    df = pd.DataFrame(
        {
            "speaker_id": spk,
            "n_sessions": 3,
            "drift": drift,
            "noise": noise,
            "dnr": drift / noise,
            "reason": "",
        }
    )
    df.loc[0, ["drift", "dnr"]] = np.nan  # a one-session speaker: no DNR
    df.loc[0, "n_sessions"] = 1
    return df


def _fold(rng, n_spk: int) -> dict:
    models = {}
    for m in MODELS:
        cmc = np.sort(rng.uniform(0, 1, n_spk))
        cmc[-1] = 1.0
        fpr = np.concatenate([[0.0], np.sort(rng.uniform(0, 1, 50)), [1.0]])
        tpr = np.clip(np.sqrt(fpr) + rng.normal(0, 0.01, fpr.size), 0, 1)
        tpr = np.maximum.accumulate(tpr)
        models[m] = {
            "cmc": cmc.tolist(),
            "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
            "det": {"p_fa": fpr.tolist(), "p_miss": (1 - tpr).tolist()},
            "eer": 0.3,
            "top1": float(cmc[0]),
        }
    return {"experiment": "main", "fold": 0, "models": models, "skipped": {}}


def _check(fig: Figure) -> None:
    assert isinstance(fig, Figure)
    assert fig.axes
    fig.canvas.draw()  # layout and text rendering must not fail


def test_order_and_palette():
    assert ordered_models([*MODELS, "zzz"]) == [*MODEL_ORDER, "zzz"]
    assert len(set(MODEL_COLORS.values())) == len(MODEL_COLORS)


def test_style_context_restores_rcparams():
    import matplotlib as mpl

    before = mpl.rcParams["axes.spines.top"]
    with figure_style():
        assert mpl.rcParams["axes.spines.top"] is False
        assert mpl.rcParams["font.size"] == 8
    assert mpl.rcParams["axes.spines.top"] == before
    with mpl.rc_context():
        apply_style()
        assert mpl.rcParams["axes.spines.right"] is False


def test_accuracy_bars(metrics):
    fig = F.accuracy_bars(metrics, "main · cross-session · 32 speakers")
    _check(fig)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == [
        "Conformer",
        "LSTM",
        "TCN",
        "Stats + LR",
        "Shape only",
        "Appearance only",
        "Chance",
    ]
    assert any(ln.get_linestyle() == "--" for ln in ax.get_lines())  # chance line
    assert "32 speakers" in ax.get_title("left")


def test_accuracy_vs_setting():
    rows = [
        {"setting": w, "model": m, "top1": 0.1 * k, "lo": 0.1 * k - 0.02, "hi": 0.1 * k + 0.02}
        for k, w in enumerate([2, 4, 8, 16], 1)
        for m in ("lstm", "conformer")
    ]
    fig = F.accuracy_vs_setting(
        pd.DataFrame(rows), "Window length (s)", "sweep", chance=1 / 32, logx=True
    )
    _check(fig)
    assert fig.axes[0].get_xlabel() == "Window length (s)"


def test_dnr_vs_accuracy(rng, dnr_table):
    spk = dnr_table["speaker_id"]
    ps = pd.concat(
        [
            pd.DataFrame(
                {
                    "model": m,
                    "speaker_id": spk,
                    "n_windows": 10,
                    "top1": rng.uniform(0, 1, len(spk)),
                    "top5": 1.0,
                    "mean_rank": 2.0,
                }
            )
            for m in ("conformer", "lstm")
        ]
    )
    corr = {"model": "conformer", "spearman_rho": 0.31, "spearman_p": 0.0004, "n": 11}
    fig = F.dnr_vs_accuracy(ps, dnr_table, corr, "cohort A")
    _check(fig)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("0.31" in t and "p < 0.001" in t for t in texts)
    assert any("n = 11" in t for t in texts)  # one speaker without DNR dropped


def test_drift_vs_noise(dnr_table):
    fig = F.drift_vs_noise(dnr_table, "cohort A")
    _check(fig)
    assert len(fig.axes) == 2
    assert any(t.get_text().strip().startswith("DNR=") for t in fig.axes[0].texts)


@pytest.mark.parametrize("curve", ["det", "roc"])
def test_cmc_and_roc(rng, curve):
    folds = [_fold(rng, 10), _fold(rng, 11)]  # different gallery sizes
    fig = F.cmc_and_roc(folds, MODELS, "cohort A", curve=curve)
    _check(fig)
    assert fig.axes[0].get_xscale() == "log"
    with pytest.raises(ValueError):
        F.cmc_and_roc(folds, MODELS, curve="bogus")


def _embeddings(rng, n_spk: int, per: int) -> pd.DataFrame:
    rows = []
    for s, spk in enumerate(_speakers(n_spk)):
        centre = rng.normal(0, 1, 8)
        for w in range(per):
            rows.append(
                {
                    "model": "conformer",
                    "fold": 0,
                    "speaker_id": spk,
                    "session_id": f"sess{s}",
                    "window_start": 60 * w,
                    **{f"e{j:03d}": v for j, v in enumerate(centre + rng.normal(0, 0.2, 8))},
                }
            )
    df = pd.DataFrame(rows)
    return pd.concat([df, df.assign(model="lstm")], ignore_index=True)


def test_embedding_map_subset_and_determinism(rng):
    emb = _embeddings(rng, 14, 3)
    fig = F.embedding_map(emb, max_speakers=12, seed=1, subtitle="fold 0")
    _check(fig)
    assert fig.legends == []  # > 10 speakers: no legend
    assert "12 speakers, 36 windows" in fig.axes[0].get_title("left")
    small = F.embedding_map(emb, max_speakers=4, seed=1)
    _check(small)
    assert len(small.legends) == 1
    again = F.embedding_map(emb, max_speakers=4, seed=1)
    a = np.vstack([c.get_offsets() for c in small.axes[0].collections])
    b = np.vstack([c.get_offsets() for c in again.axes[0].collections])
    np.testing.assert_allclose(a, b)


def test_embedding_map_tiny_falls_back_to_pca(rng):
    fig = F.embedding_map(_embeddings(rng, 2, 2), model="lstm")
    _check(fig)
    assert fig.axes[0].get_xlabel().startswith("PCA")


def test_fit_quality(rng):
    n = 20
    videos = pd.DataFrame(
        {
            "session_id": [f"s{i}" for i in range(n)],
            "speaker_id": _speakers(n),
            "jaw_open_r": rng.uniform(-0.2, 0.9, n),
            "shape_rmse": 1.0,
            "nme_median": rng.uniform(0.01, 0.03, n),
            "nme_p90": rng.uniform(0.02, 0.06, n),
            "frames_matched": 450.0,
        }
    )
    comps = pd.DataFrame(
        [
            {
                "component": f"expr_{c:03d}",
                "r": r,
                "truth_sd": 1.0,
                "fitted_sd": 1.0,
                "session_id": f"s{i}",
                "speaker_id": "x",
            }
            for i in range(n)
            for c, r in enumerate(rng.uniform(-1, 1, 5))
        ]
    )
    fig = F.fit_quality(videos, comps, ["expr_003", "expr_000"], "96 videos")
    _check(fig)
    labels = [t.get_text() for t in fig.axes[1].get_xticklabels()]
    assert labels == ["jaw\nopen", "expr\n003", "expr\n000"]


def test_save_figure_atomic(tmp_path, metrics):
    fig = F.accuracy_bars(metrics, "x")
    paths = save_figure(fig, tmp_path / "sub" / "acc")
    assert [p.name for p in paths] == ["acc.png", "acc.pdf"]
    for p in paths:
        assert p.stat().st_size > 1000
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["acc.pdf", "acc.png"]
    assert fig.axes == []  # closed / cleared


def test_summary_page_is_generated_from_metrics(tmp_path):
    from facedyn.plots.summary import write_summary

    metrics = {
        "experiment": "main",
        "protocol": "cross_session",
        "source": "fitted",
        "n_speakers": 4,
        "chance": 0.25,
        "status": "ok",
        "settings": {"encoder": "conformer"},
        "models": {
            "conformer": {
                "top1": 0.5,
                "top1_ci": [0.4, 0.6],
                "top5": 1.0,
                "session_top1": 0.75,
                "eer": 0.2,
                "min_dcf": 0.9,
            },
            "stats_lr": {
                "top1": 0.625,
                "top1_ci": [0.5, 0.75],
                "top5": 1.0,
                "session_top1": 1.0,
                "eer": 0.1,
                "min_dcf": 0.8,
            },
        },
        "dnr_vs_accuracy": {"model": "conformer", "spearman_rho": -0.4, "spearman_p": 0.03, "n": 4},
        "extraction_efficiency": 0.8,
        "comparisons": {
            "stats_lr": {
                "model": "conformer",
                "reference": "stats_lr",
                "top1_diff": -0.125,
                "top1_diff_ci": [-0.3, 0.05],
                "wilcoxon_p": 0.41,
                "n_speakers": 4,
            }
        },
    }
    empty = {
        "experiment": "tiny",
        "protocol": "within_session",
        "source": "fitted",
        "n_speakers": 0,
        "status": "no_data",
        "models": {},
    }
    paths = []
    for m in (metrics, empty):
        paths.append(tmp_path / f"{m['experiment']}.json")
        paths[-1].write_text(json.dumps(m))
    dnr = tmp_path / "dnr.json"
    dnr.write_text(
        json.dumps(
            {
                "n_speakers_with_dnr": 4,
                "dnr": {"median": 2.0, "iqr": 1.0},
                "synthetic_check": {"spearman_rho": 0.5},
            }
        )
    )
    out = write_summary(
        tmp_path / "summary.md", "smoke", [str(p) for p in paths], str(dnr), None, main="main"
    )
    text = out.read_text()
    assert "50.0 % [40.0 %, 60.0 %]" in text and "Stats + LR 62.5 %" in text
    assert "Spearman rho -0.40" in text and "0.80" in text
    assert "-12.5 points of top-1 (95 % CI -30.0 to +5.0; Wilcoxon p 0.410 over 4" in text
    assert "`tiny` (no_data)" in text and "median 2.00" in text


def test_sweep_points_take_the_swept_setting_and_shared_models(tmp_path):
    from facedyn.plots.stage import run_sweep_figure, sweep_points

    def m(name, window, models):
        return {
            "experiment": name,
            "protocol": "cross_session",
            "n_speakers": 8,
            "chance": 0.125,
            "settings": {"window_s": window, "data_fraction": 1.0},
            "models": {k: {"top1": v, "top1_ci": [v - 0.1, v + 0.1]} for k, v in models.items()},
        }

    runs = [
        m("w4", 4, {"conformer": 0.3, "stats_lr": 0.4, "chance": 0.1}),
        m("w8", 8, {"conformer": 0.5, "stats_lr": 0.45, "lstm": 0.2}),
    ]
    points = sweep_points(runs, "window_s")
    assert set(points["model"]) == {"conformer", "stats_lr"}  # shared, chance dropped
    conf = points[points["model"] == "conformer"].sort_values("setting")
    assert conf["setting"].tolist() == [4.0, 8.0] and conf["top1"].tolist() == [0.3, 0.5]
    paths = []
    for r in runs:
        paths.append(tmp_path / f"{r['experiment']}.json")
        paths[-1].write_text(json.dumps(r))
    written = run_sweep_figure("accuracy_vs_window", [str(p) for p in paths], tmp_path, "t")
    assert [p.name for p in written] == ["accuracy_vs_window.png", "accuracy_vs_window.pdf"]


def test_fit_traces_draw_one_panel_per_component_with_gaps():
    frames = np.arange(0, 600, 2)
    t = frames / 30
    truth = pd.DataFrame(
        {
            "frame": np.arange(600),
            "jaw_0": np.sin(np.arange(600) / 9),
            "expr_009": np.cos(np.arange(600) / 7),
        }
    )
    fitted = pd.DataFrame(
        {
            "frame": frames,
            "time_s": t,
            "valid": frames % 50 != 0,
            "jaw_0": np.sin(frames / 9) * 0.5,
            "expr_009": np.cos(frames / 7),
        }
    )
    fig = F.fit_traces(fitted, truth, ["jaw_0", "expr_009"], seconds=10, subtitle="x")
    assert len(fig.axes) == 2
    line = fig.axes[1].lines[1]  # fitted
    assert np.isnan(np.asarray(line.get_ydata(), float)).any()  # invalid frames are gaps
    assert np.asarray(line.get_xdata(), float).max() <= 10 + 1e-9
