"""The figure rules: read finished results, draw, save.

Every figure is written as ``<name>.png`` and ``<name>.pdf`` (``facedyn.plots.save_figure``);
subtitles name the experiment, protocol and number of speakers so a figure taken out of the
report still says what it shows. Only ``landmark_frame`` (:func:`run_landmark_frame_figure`)
draws a video frame, and only for the synthetic cohort or with
``privacy.frames_in_figures: true`` (:func:`facedyn.privacy.check_frames_allowed`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facedyn.names import IDENTIFICATION_FIGURES
from facedyn.plots import figures as F
from facedyn.plots.frames import landmark_frame
from facedyn.plots.style import save_figure
from facedyn.privacy import check_frames_allowed
from facedyn.tables import read_table


def _subtitle(metrics: Mapping[str, object], cohort: str) -> str:
    protocol = str(metrics.get("protocol", "")).replace("_", "-")
    return (
        f"{cohort} · {metrics.get('experiment')} · {protocol} · "
        f"{metrics.get('n_speakers')} speakers"
    )


def run_identify_figures(
    metrics_path: str | os.PathLike[str],
    fold_metrics_paths: Sequence[str],
    embeddings_path: str,
    per_speaker_path: str,
    dnr_speakers_path: str,
    out_dir: str | os.PathLike[str],
    cohort: str,
    max_speakers: int = 20,
    seed: int = 0,
) -> list[Path]:
    """The identification figures of one experiment (:data:`IDENTIFICATION_FIGURES`)."""
    out = Path(out_dir)
    metrics = json.loads(Path(metrics_path).read_text())
    sub = _subtitle(metrics, cohort)
    folds = [json.loads(Path(p).read_text()) for p in fold_metrics_paths]
    per_speaker, _ = read_table(per_speaker_path)
    dnr, dnr_meta = read_table(dnr_speakers_path)
    embeddings, _ = read_table(embeddings_path)
    models = list(metrics.get("models", {}))
    corr = metrics.get("dnr_vs_accuracy") or {
        "model": models[0] if models else "",
        "spearman_rho": float("nan"),
        "spearman_p": float("nan"),
    }
    units = "standardised shape units" if dnr_meta.get("standardize") else "shape coefficient units"
    figures = {
        "accuracy": lambda: F.accuracy_bars(metrics, sub),
        "cmc_det": lambda: F.cmc_and_roc(folds, models, sub, curve="det"),
        "dnr_vs_accuracy": lambda: F.dnr_vs_accuracy(per_speaker, dnr, corr, sub),
        "drift_vs_noise": lambda: F.drift_vs_noise(dnr, f"{cohort} · {units}"),
        "embeddings": lambda: F.embedding_map(
            embeddings, max_speakers, seed, f"{sub} · fold 0 test windows"
        ),
    }
    assert figures.keys() == IDENTIFICATION_FIGURES.keys()
    written: list[Path] = []
    for name in IDENTIFICATION_FIGURES:
        written += save_figure(figures[name](), out / name)
    return written


def run_fit_quality_figure(
    videos_path: str,
    components_path: str,
    summary_path: str,
    out_dir: str | os.PathLike[str],
    cohort: str,
    traces: tuple[str, str] | None = None,
) -> list[Path]:
    """Fit quality against the synthetic truth (NME per video, r per dominant component)
    and, with ``traces`` = (FLAME table, truth frames) of one video, its fitted vs true
    traces of jaw opening and the four most dominant components (``fit_traces``)."""
    videos: pd.DataFrame = read_table(videos_path)[0]
    components: pd.DataFrame = read_table(components_path)[0]
    summary = json.loads(Path(summary_path).read_text())
    dominant = list(summary.get("dominant_components") or [])
    fig = F.fit_quality(
        videos, components, dominant, f"{cohort} · {summary.get('videos_fitted')} videos"
    )
    written = save_figure(fig, Path(out_dir) / "fit_quality")
    if traces is not None:
        fitted, meta = read_table(traces[0])
        truth, _ = read_table(traces[1])
        comps = ["jaw_0", *dominant[:4]]
        sub = f"{cohort} · video {meta.get('session_id')}/{meta.get('speaker_id')}"
        written += save_figure(
            F.fit_traces(fitted, truth, comps, subtitle=sub), Path(out_dir) / "fit_traces"
        )
    return written


def run_legibility_figure(
    videos_path: str | os.PathLike[str],
    summary_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    cohort: str,
) -> list[Path]:
    """``legibility``: detected vs true facial measures, NME and detection per video
    (``results/landmarks/legibility.{parquet,json}``, synthetic cohort)."""
    videos: pd.DataFrame = read_table(videos_path)[0]
    summary = json.loads(Path(summary_path).read_text())
    sub = (
        f"{cohort} · {summary.get('videos')} videos · targets met "
        f"{summary.get('targets_met')} of {summary.get('targets_total')}"
    )
    return save_figure(F.legibility(videos, summary, sub), Path(out_dir) / "legibility")


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


def run_sweep_figure(
    name: str, metrics_paths: Sequence[str], out_dir: str | os.PathLike[str], cohort: str
) -> list[Path]:
    """One sweep figure (``SWEEPS[name]``) from the swept experiments' metrics."""
    setting, xlabel = SWEEPS[name]
    metrics = [json.loads(Path(p).read_text()) for p in metrics_paths]
    points = sweep_points(metrics, setting)
    chance = metrics[0].get("chance")
    sub = f"{cohort} · {metrics[0].get('protocol')} · {metrics[0].get('n_speakers')} speakers"
    fig = F.accuracy_vs_setting(points, xlabel, sub, chance=chance, logx=setting == "window_s")
    return save_figure(fig, Path(out_dir) / name)


# --------------------------------------------------------------------------- landmark frame


def median_nme_frame(flame: pd.DataFrame) -> int:
    """The source frame index of the valid row with the median ``nme`` (the lower median;
    ties go to the earlier frame): a typical, deterministically chosen frame."""
    ok = flame[flame["valid"].astype(bool) & np.isfinite(flame["nme"].to_numpy(float))]
    if ok.empty:
        raise ValueError("the FLAME table has no valid fitted frame to draw")
    ranked = ok.sort_values(["nme", "frame"], kind="stable")
    return int(ranked["frame"].iloc[(len(ranked) - 1) // 2])


def _xy(row: pd.Series | Mapping[str, object]) -> np.ndarray:
    return np.array(
        [
            [float(row[f"lx{k:02d}"]), float(row[f"ly{k:02d}"])]  # type: ignore[arg-type]
            for k in range(68)
        ]
    )


def run_landmark_frame_figure(
    flame_path: str | os.PathLike[str],
    landmarks_path: str | os.PathLike[str],
    model_json: str | os.PathLike[str],
    video: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    cohort: str,
    *,
    dataset_kind: str,
    frames_in_figures: bool = False,
    truth_path: str | os.PathLike[str] | None = None,
    frame: int | None = None,
) -> list[Path]:
    """``landmark_frame``: one frame of one video with its detected and fitted landmarks
    (and, given the synthetic truth table, the true ones in a second panel).

    The frame is the valid one with the median fit NME (:func:`median_nme_frame`) unless
    ``frame`` names a source frame index. The privacy gate
    (:func:`facedyn.privacy.check_frames_allowed`) runs before the video is opened.
    """
    check_frames_allowed(dataset_kind, frames_in_figures)
    flame, meta = read_table(flame_path)
    lmk, lmk_meta = read_table(landmarks_path)
    index = median_nme_frame(flame) if frame is None else int(frame)
    row = flame[flame["frame"] == index]
    det = lmk[(lmk["frame"] == index) & lmk["detected"].astype(bool)]
    if row.empty or not bool(row["valid"].iloc[0]) or det.empty:
        raise ValueError(f"frame {index} has no detected and fitted landmarks to draw")
    width, height = int(lmk_meta["width"]), int(lmk_meta["height"])
    from facedyn.flame.reproject import fitted_landmarks  # torch: only this figure needs it

    fitted = fitted_landmarks(row, model_json, width, height)[0]
    true_xy = None
    if truth_path is not None:
        truth, _ = read_table(truth_path)
        match = truth[truth["frame"] == index]
        if not match.empty:
            true_xy = _xy(match.iloc[0])
    from facedyn.face.video import read_video_frame

    image = read_video_frame(video, index)
    fps = lmk_meta.get("source_fps")
    when = f" (t = {index / float(fps):.1f} s)" if fps else ""
    chosen = "the median-NME frame" if frame is None else "frame chosen by the caller"
    sub = (
        f"{cohort} · frame {index}{when}, {chosen}\n"
        f"video {meta.get('session_id')}/{meta.get('speaker_id')}"
    )
    fig = landmark_frame(
        image,
        _xy(det.iloc[0]),
        fitted,
        dataset_kind=dataset_kind,
        frames_in_figures=frames_in_figures,
        true_xy=true_xy,
        subtitle=sub,
    )
    return save_figure(fig, Path(out_dir) / "landmark_frame")
