"""The ``figures`` and ``figure_fit_quality`` rules: read finished results, draw, save.

Every figure is written as ``<name>.png`` and ``<name>.pdf`` (``facedyn.plots.save_figure``);
subtitles name the experiment, protocol and number of speakers so a figure taken out of the
report still says what it shows. No figure draws video frames (``privacy.frames_in_figures``
governs the frame panels, which are not built yet).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from facedyn.plots import figures as F
from facedyn.plots.style import save_figure
from facedyn.tables import read_table


def _subtitle(metrics: Mapping[str, object], cohort: str) -> str:
    protocol = str(metrics.get("protocol", "")).replace("_", "-")
    return (f"{cohort} · {metrics.get('experiment')} · {protocol} · "
            f"{metrics.get('n_speakers')} speakers")


def run_identify_figures(metrics_path: str | os.PathLike[str],
                         fold_metrics_paths: Sequence[str], embeddings_path: str,
                         per_speaker_path: str, dnr_speakers_path: str,
                         out_dir: str | os.PathLike[str], cohort: str,
                         max_speakers: int = 20, seed: int = 0) -> list[Path]:
    """The identification figures of one experiment: accuracy, cmc_det, dnr_vs_accuracy,
    drift_vs_noise, embeddings (the outputs of ``rule figures``)."""
    out = Path(out_dir)
    metrics = json.loads(Path(metrics_path).read_text())
    sub = _subtitle(metrics, cohort)
    folds = [json.loads(Path(p).read_text()) for p in fold_metrics_paths]
    per_speaker, _ = read_table(per_speaker_path)
    dnr, dnr_meta = read_table(dnr_speakers_path)
    embeddings, _ = read_table(embeddings_path)
    models = list(metrics.get("models", {}))
    corr = metrics.get("dnr_vs_accuracy") or {"model": models[0] if models else "",
                                              "spearman_rho": float("nan"),
                                              "spearman_p": float("nan")}
    written: list[Path] = []
    written += save_figure(F.accuracy_bars(metrics, sub), out / "accuracy")
    written += save_figure(F.cmc_and_roc(folds, models, sub, curve="det"), out / "cmc_det")
    written += save_figure(F.dnr_vs_accuracy(per_speaker, dnr, corr, sub),
                           out / "dnr_vs_accuracy")
    units = ("standardised shape units" if dnr_meta.get("standardize")
             else "shape coefficient units")
    written += save_figure(F.drift_vs_noise(dnr, f"{cohort} · {units}"), out / "drift_vs_noise")
    written += save_figure(F.embedding_map(embeddings, max_speakers, seed,
                                           f"{sub} · fold 0 test windows"), out / "embeddings")
    return written


def run_fit_quality_figure(videos_path: str, components_path: str, summary_path: str,
                           out_dir: str | os.PathLike[str], cohort: str,
                           traces: tuple[str, str] | None = None) -> list[Path]:
    """Fit quality against the synthetic truth (NME per video, r per dominant component)
    and, with ``traces`` = (FLAME table, truth frames) of one video, its fitted vs true
    traces of jaw opening and the four most dominant components (``fit_traces``)."""
    videos: pd.DataFrame = read_table(videos_path)[0]
    components: pd.DataFrame = read_table(components_path)[0]
    summary = json.loads(Path(summary_path).read_text())
    dominant = list(summary.get("dominant_components") or [])
    fig = F.fit_quality(videos, components, dominant,
                        f"{cohort} · {summary.get('videos_fitted')} videos")
    written = save_figure(fig, Path(out_dir) / "fit_quality")
    if traces is not None:
        fitted, meta = read_table(traces[0])
        truth, _ = read_table(traces[1])
        comps = ["jaw_0", *dominant[:4]]
        sub = f"{cohort} · video {meta.get('session_id')}/{meta.get('speaker_id')}"
        written += save_figure(F.fit_traces(fitted, truth, comps, subtitle=sub),
                               Path(out_dir) / "fit_traces")
    return written


#: Sweep figures: file stem -> (the swept experiment setting, x label). Which experiments
#: each draws is config (`figures.*`, mapped in workflow/rules/common.smk).
SWEEPS = {
    "accuracy_vs_window": ("window_s", "Window length (s)"),
    "accuracy_vs_data": ("data_fraction", "Training data used (share of each session)"),
}


def sweep_points(metrics: Sequence[Mapping[str, object]], setting: str) -> pd.DataFrame:
    """``setting, model, top1, lo, hi`` for every model that every swept experiment has."""
    rows = []
    shared = set.intersection(*(set(m.get("models", {})) for m in metrics)) - {"chance"}
    for m in metrics:
        x = float((m.get("settings") or {})[setting])
        for name in shared:
            entry = m["models"][name]
            lo, hi = entry.get("top1_ci") or (entry["top1"], entry["top1"])
            rows.append({"setting": x, "model": name, "top1": entry["top1"], "lo": lo, "hi": hi})
    return pd.DataFrame(rows, columns=["setting", "model", "top1", "lo", "hi"])


def run_sweep_figure(name: str, metrics_paths: Sequence[str], out_dir: str | os.PathLike[str],
                     cohort: str) -> list[Path]:
    """One sweep figure (``SWEEPS[name]``) from the swept experiments' metrics."""
    setting, xlabel = SWEEPS[name]
    metrics = [json.loads(Path(p).read_text()) for p in metrics_paths]
    points = sweep_points(metrics, setting)
    chance = metrics[0].get("chance")
    sub = f"{cohort} · {metrics[0].get('protocol')} · {metrics[0].get('n_speakers')} speakers"
    fig = F.accuracy_vs_setting(points, xlabel, sub, chance=chance,
                                logx=setting == "window_s")
    return save_figure(fig, Path(out_dir) / name)
