"""The paper's figures, each built from already-loaded results (dicts / DataFrames).

The one figure that draws a video frame is in :mod:`facedyn.plots.frames`. Every function
returns a :class:`matplotlib.figure.Figure` in the facedyn style
(:mod:`facedyn.plots.style`); write it with :func:`facedyn.plots.style.save_figure`.
Nothing here reads files. Accuracies are shown in percent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from scipy.stats import norm

from facedyn.plots.style import (
    CYCLE,
    DOUBLE_COL,
    GREY,
    OKABE_ITO,
    SINGLE_COL,
    figure_style,
    model_color,
    model_label,
    new_figure,
    ordered_models,
    title,
)

_EMBED_COL = re.compile(r"^e\d+$")


def _pct(x: Any) -> Any:
    return np.asarray(x, dtype=float) * 100.0


# --------------------------------------------------------------------------- accuracy


def accuracy_bars(
    metrics: Mapping[str, Any], subtitle: str = "", models: Sequence[str] | None = None
) -> Figure:
    """Top-1 (with 95 % CI) and top-5 accuracy per model, dashed top-1 chance line.

    ``metrics`` is ``results/identify/{experiment}/metrics.json``: ``models`` maps a model
    to ``top1, top1_ci, top5``; ``chance`` is the top-1 chance level.
    """
    per_model = metrics["models"]
    names = ordered_models(models if models is not None else per_model)
    names = [m for m in names if m in per_model]
    x = np.arange(len(names))
    w = 0.38
    with figure_style():
        fig = new_figure(max(SINGLE_COL, 0.55 * len(names) + 1.2), 2.7)
        ax = fig.add_subplot()
        for i, m in enumerate(names):
            r = per_model[m]
            c = model_color(m)
            top1 = float(r["top1"]) * 100
            ci = r.get("top1_ci")
            yerr = None
            if ci is not None and all(v is not None for v in ci):
                yerr = [[top1 - ci[0] * 100], [ci[1] * 100 - top1]]
            ax.bar(
                i - w / 2,
                top1,
                w,
                color=c,
                edgecolor=c,
                yerr=yerr,
                error_kw={"elinewidth": 0.8, "ecolor": "black"},
            )
            if r.get("top5") is not None:
                ax.bar(
                    i + w / 2,
                    float(r["top5"]) * 100,
                    w,
                    facecolor="white",
                    edgecolor=c,
                    hatch="//////",
                    linewidth=0.8,
                )
        handles: list[Any] = [
            Patch(facecolor="0.35", edgecolor="0.35", label="top-1 (95 % CI)"),
            Patch(facecolor="white", edgecolor="0.35", hatch="//////", label="top-5"),
        ]
        chance = metrics.get("chance")
        if chance is not None:
            ax.axhline(float(chance) * 100, color="black", ls="--", lw=0.9, zorder=0)
            handles.append(
                Line2D(
                    [],
                    [],
                    color="black",
                    ls="--",
                    lw=0.9,
                    label=f"top-1 chance ({float(chance) * 100:.1f} %)",
                )
            )
        ax.set_xticks(
            x, [model_label(m) for m in names], rotation=30, ha="right", rotation_mode="anchor"
        )
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_ylabel("Identification accuracy (%)")
        top = max(
            [float(per_model[m].get("top5") or 0) for m in names]
            + [float((per_model[m].get("top1_ci") or [0, 0])[1] or 0) for m in names]
            + [float(per_model[m]["top1"]) for m in names]
        )
        ax.set_ylim(0, min(100.0, top * 100 * 1.08 + 1))
        ax.yaxis.grid(True)
        ax.set_axisbelow(True)
        ax.set_title(title("Speaker identification accuracy", subtitle, 60))
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=3,
            columnspacing=1.0,
            handlelength=1.4,
        )
    return fig


def accuracy_vs_setting(
    points: pd.DataFrame,
    xlabel: str,
    subtitle: str = "",
    *,
    chance: float | None = None,
    logx: bool = False,
) -> Figure:
    """Top-1 accuracy against a swept setting (window length, training data, ...).

    ``points`` has columns ``setting, model, top1, lo, hi`` (fractions; ``lo``/``hi`` the 95 %
    CI, drawn as a band). ``setting`` must be numeric. ``chance`` adds a dashed line.
    """
    with figure_style():
        fig = new_figure(SINGLE_COL, 2.9)
        ax = fig.add_subplot()
        for m in ordered_models(points["model"].astype(str)):
            d = points[points["model"].astype(str) == m].sort_values("setting")
            c = model_color(m)
            xs = d["setting"].to_numpy(dtype=float)
            ax.plot(
                xs,
                _pct(d["top1"]),
                color=c,
                marker="o",
                ms=3,
                label=model_label(m),
                ls=":" if m == "chance" else "-",
            )
            if {"lo", "hi"} <= set(d.columns) and d[["lo", "hi"]].notna().all().all():
                ax.fill_between(xs, _pct(d["lo"]), _pct(d["hi"]), color=c, alpha=0.12, lw=0)
        if chance is not None:
            ax.axhline(chance * 100, color="black", ls="--", lw=0.9, zorder=0, label="top-1 chance")
        if logx:
            ax.set_xscale("log")
        settings = np.unique(points["setting"].to_numpy(dtype=float))
        if len(settings) <= 8:
            ax.set_xticks(settings, [f"{s:g}" for s in settings])
            ax.minorticks_off()
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Top-1 accuracy (%)")
        ax.set_ylim(bottom=0)
        ax.yaxis.grid(True)
        ax.set_axisbelow(True)
        ax.set_title(title("Top-1 accuracy (95 % CI band)", subtitle, 60))
        fig.legend(loc="outside lower center", ncols=3, columnspacing=1.0)
    return fig


# --------------------------------------------------------------------------- DNR


def dnr_vs_accuracy(
    per_speaker: pd.DataFrame,
    dnr: pd.DataFrame,
    corr: Mapping[str, Any],
    subtitle: str = "",
    *,
    model: str | None = None,
) -> Figure:
    """Per-speaker top-1 accuracy against the speaker's drift-to-noise ratio.

    ``per_speaker`` has ``speaker_id, top1`` (and ``model``: filtered to ``model``, else
    ``corr["model"]``); ``dnr`` has ``speaker_id, dnr``; ``corr`` carries ``spearman_rho``
    and ``spearman_p`` (``metrics.json["dnr_vs_accuracy"]``), written into the panel.
    """
    ps = per_speaker
    model = model or corr.get("model")
    if "model" in ps.columns and model is not None:
        ps = ps[ps["model"] == model]
    d = ps[["speaker_id", "top1"]].merge(dnr[["speaker_id", "dnr"]], on="speaker_id")
    d = d.dropna(subset=["top1", "dnr"])
    x = d["dnr"].to_numpy(dtype=float)
    y = _pct(d["top1"])
    c = model_color(model) if model else OKABE_ITO["blue"]
    with figure_style():
        fig = new_figure(SINGLE_COL, 2.8)
        ax = fig.add_subplot()
        ax.scatter(x, y, s=14, color=c, alpha=0.8, edgecolor="white", linewidth=0.4, zorder=3)
        handles: list[Any] = []
        if len(x) >= 2 and np.ptp(x) > 0:
            slope, icpt = np.polyfit(x, y, 1)
            xx = np.linspace(x.min(), x.max(), 50)
            ax.plot(xx, slope * xx + icpt, color="black", lw=1.0, zorder=2)
            handles.append(Line2D([], [], color="black", lw=1.0, label="least-squares fit"))
        rho, p = corr.get("spearman_rho"), corr.get("spearman_p")
        if rho is not None and p is not None:
            ptxt = "p < 0.001" if p < 1e-3 else f"p = {p:.2g}" if p < 0.01 else f"p = {p:.2f}"
            handles.append(Line2D([], [], ls="", label=f"Spearman \u03c1 = {rho:.2f}, {ptxt}"))
        handles.append(Line2D([], [], ls="", label=f"n = {len(x)} speakers"))
        ax.legend(
            handles=handles,
            loc="best",
            handlelength=1.4,
            frameon=True,
            framealpha=0.85,
            edgecolor="none",
        )
        ax.set_xlabel("Drift-to-noise ratio, DNR (drift / noise)")
        ax.set_ylabel("Per-speaker top-1 accuracy (%)")
        ax.set_ylim(-3, max(100.0 * 0.3, float(y.max()) * 1.15 if len(y) else 100) + 3)
        ttl = "Accuracy vs. DNR" + (f" ({model_label(model)})" if model else "")
        ax.set_title(title(ttl, subtitle, 60))
    return fig


def _nice_ratios(lo: float, hi: float) -> list[float]:
    cands = [0.25, 0.5, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32]
    inside = [c for c in cands if lo <= c <= hi]
    if len(inside) > 5:
        inside = inside[:: int(np.ceil(len(inside) / 5))]
    return inside or [float(f"{np.sqrt(lo * hi):.2g}")]


def drift_vs_noise(dnr: pd.DataFrame, subtitle: str = "") -> Figure:
    """Left: per-speaker drift vs. noise with DNR iso-lines; right: DNR histogram.

    ``dnr`` is ``results/dnr/speakers.parquet`` (``drift, noise, dnr``; speakers without a
    DNR, e.g. with one session, are left out). Units are those of the shape coefficients.
    """
    d = dnr.dropna(subset=["drift", "noise", "dnr"])
    with figure_style():
        fig = new_figure(DOUBLE_COL, 2.7)
        ax1, ax2 = fig.subplots(1, 2, width_ratios=[1.1, 1])
        nx, dy = d["noise"].to_numpy(float), d["drift"].to_numpy(float)
        ax1.scatter(
            nx,
            dy,
            s=14,
            color=OKABE_ITO["blue"],
            alpha=0.85,
            edgecolor="white",
            linewidth=0.4,
            zorder=3,
        )
        if len(d):
            xmax = float(nx.max()) * 1.1
            ymax = float(dy.max()) * 1.1
            ax1.set_xlim(0, xmax)
            ax1.set_ylim(0, ymax)
            r = d["dnr"].to_numpy(float)
            lo, hi = float(r.min()) * 0.7, float(r.max()) * 1.4
            xx = np.array([0.0, xmax])
            for k in _nice_ratios(max(lo, 1e-3), max(hi, 1e-3)):
                ax1.plot(xx, k * xx, color=GREY, lw=0.7, ls="--", zorder=1)
                # label where the line leaves the box (top or right edge)
                if k * xmax <= ymax:
                    xt, yt, ha, va = xmax, k * xmax, "right", "bottom"
                else:
                    xt, yt, ha, va = ymax / k, ymax, "left", "top"
                ax1.text(
                    xt, yt, f" DNR={k:g}", color="0.35", fontsize=6.5, ha=ha, va=va, clip_on=False
                )
        ax1.set_xlabel("Within-session noise N (shape coef. units)")
        ax1.set_ylabel("Between-session drift D (shape coef. units)")
        ax1.set_title("Drift vs. noise per speaker")
        vals = d["dnr"].to_numpy(float)
        bins = min(20, max(5, int(np.sqrt(max(len(vals), 1))) * 2))
        ax2.hist(
            vals, bins=bins, color=OKABE_ITO["blue"], alpha=0.8, edgecolor="white", linewidth=0.5
        )
        if len(vals):
            med = float(np.median(vals))
            ax2.axvline(med, color="black", ls="--", lw=0.9, label=f"median = {med:.2f}")
            ax2.legend(loc="upper right")
        ax2.set_xlabel("Drift-to-noise ratio, DNR = D / N")
        ax2.set_ylabel("Speakers (count)")
        ax2.set_title(f"DNR distribution (n = {len(vals)} speakers)")
        if subtitle:
            fig.suptitle(subtitle, x=0.01, ha="left", fontsize=8, color="0.3")
    return fig


# --------------------------------------------------------------------------- CMC / DET


def _fold_models(fold: Mapping[str, Any]) -> Mapping[str, Any]:
    return fold["models"] if "models" in fold and isinstance(fold["models"], Mapping) else fold


_PROBIT_TICKS = np.array([0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99])
_P_CLIP = (5e-4, 1 - 5e-4)


def _probit(p: Any) -> np.ndarray:
    return norm.ppf(np.clip(np.asarray(p, dtype=float), *_P_CLIP))


def cmc_and_roc(
    fold_metrics: Sequence[Mapping[str, Any]],
    models: Sequence[str],
    subtitle: str = "",
    *,
    curve: str = "det",
) -> Figure:
    """Left: CMC averaged over folds (log rank axis). Right: DET (``curve="det"``, normal
    deviate axes) or ROC (``curve="roc"``), averaged over folds, with the EER marked.

    ``fold_metrics`` are the ``fold_metrics.json`` dicts (``{"models": {m: {cmc, roc, det,
    eer}}}``); ``models`` selects (and the fixed order sorts) the models to draw.
    """
    if curve not in ("det", "roc"):
        raise ValueError(f"curve must be 'det' or 'roc', not {curve!r}")
    folds = [_fold_models(f) for f in fold_metrics]
    names = ordered_models(m for m in models if any(m in f for f in folds))
    grid = norm.cdf(np.linspace(norm.ppf(_P_CLIP[0]), norm.ppf(_P_CLIP[1]), 300))
    with figure_style():
        fig = new_figure(DOUBLE_COL, 2.9)
        ax1, ax2 = fig.subplots(1, 2)
        n_rank = 0
        for m in names:
            c = model_color(m)
            ls = ":" if m == "chance" else "-"
            runs = [f[m] for f in folds if m in f]
            # CMC: pad shorter curves (smaller gallery) with 1.0, then average
            cmcs = [np.asarray(r["cmc"], float) for r in runs if r.get("cmc")]
            if cmcs:
                n = max(len(v) for v in cmcs)
                mat = np.vstack([np.pad(v, (0, n - len(v)), constant_values=1.0) for v in cmcs])
                ranks = np.arange(1, n + 1)
                n_rank = max(n_rank, n)
                ax1.plot(ranks, _pct(mat.mean(0)), color=c, ls=ls, label=model_label(m))
            # DET / ROC: vertical averaging of miss rate on a common false-alarm grid
            misses = []
            for r in runs:
                if r.get("det"):
                    pfa = np.asarray(r["det"]["p_fa"], float)
                    pmiss = np.asarray(r["det"]["p_miss"], float)
                elif r.get("roc"):
                    pfa = np.asarray(r["roc"]["fpr"], float)
                    pmiss = 1 - np.asarray(r["roc"]["tpr"], float)
                else:
                    continue
                order = np.argsort(pfa, kind="stable")
                misses.append(np.interp(grid, pfa[order], pmiss[order]))
            eers = [float(r["eer"]) for r in runs if r.get("eer") is not None]
            eer = float(np.mean(eers)) if eers else None
            if misses:
                pm = np.mean(misses, axis=0)
                # DET: normal-deviate axes; ROC: true-positive rate against false alarms.
                xs, ys = (_probit(grid), _probit(pm)) if curve == "det" else (grid, 1 - pm)
                ax2.plot(xs, ys, color=c, ls=ls)
                if eer is not None:
                    ex, ey = (_probit(eer), _probit(eer)) if curve == "det" else (eer, 1 - eer)
                    ax2.plot(
                        ex,
                        ey,
                        marker="o",
                        ms=4,
                        color=c,
                        markeredgecolor="black",
                        markeredgewidth=0.5,
                        zorder=4,
                    )
        ax1.set_xscale("log")
        if n_rank:
            rt = [r for r in (1, 2, 5, 10, 20, 50, 100, 200, 500) if r < n_rank * 0.8]
            ax1.set_xticks([*rt, n_rank], [str(r) for r in [*rt, n_rank]])
            ax1.minorticks_off()
            ax1.set_xlim(0.9, n_rank * 1.1)
        ax1.set_xlabel("Rank (log scale)")
        ax1.set_ylabel("Identification rate (%)")
        ax1.set_ylim(0, 101)
        ax1.grid(True, which="major")
        ax1.set_title(f"CMC (mean over {len(folds)} folds)")
        if curve == "det":
            ticks = _probit(_PROBIT_TICKS)
            labels = [f"{t * 100:g}" for t in _PROBIT_TICKS]
            lim = (_probit(0.0008)[()], _probit(0.995)[()])
            ax2.plot(lim, lim, color=GREY, lw=0.6, ls="--", zorder=0)
            ax2.set_xticks(ticks, labels)
            ax2.set_yticks(ticks, labels)
            ax2.set_xlim(*lim)
            ax2.set_ylim(*lim)
            ax2.set_xlabel("False-alarm rate (%, normal deviate scale)")
            ax2.set_ylabel("Miss rate (%, normal deviate scale)")
            ax2.set_title("DET (verification; \u25cf = EER)")
        else:
            ax2.plot([0, 1], [0, 1], color=GREY, lw=0.6, ls="--", zorder=0)
            ax2.set_xlim(0, 1)
            ax2.set_ylim(0, 1.01)
            ax2.set_xlabel("False-positive rate")
            ax2.set_ylabel("True-positive rate")
            ax2.set_title("ROC (verification; \u25cf = EER)")
        ax2.grid(True)
        ax2.set_aspect("equal", adjustable="box")
        handles, labels = ax1.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center")
        if subtitle:
            fig.suptitle(subtitle, x=0.01, ha="left", fontsize=8, color="0.3")
    return fig


# --------------------------------------------------------------------------- embeddings


_MARKERS = ("o", "s", "^", "D", "v", "P")


def embedding_map(
    embeddings: pd.DataFrame,
    max_speakers: int = 20,
    seed: int = 0,
    subtitle: str = "",
    *,
    model: str | None = None,
) -> Figure:
    """2-D t-SNE of test-window embeddings, coloured (and marked) by speaker.

    ``embeddings`` is a fold's ``embeddings.parquet`` (``model, speaker_id, e000, ...``); it
    is filtered to ``model`` (default: the first model in the fixed order). At most
    ``max_speakers`` speakers (a seeded random subset) are drawn; the legend is left out
    above 10 speakers. Deterministic for a given ``seed``.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    e = embeddings
    if "model" in e.columns:
        model = model or ordered_models(e["model"].astype(str))[0]
        e = e[e["model"] == model]
    cols = [c for c in e.columns if _EMBED_COL.match(str(c))]
    speakers = sorted(e["speaker_id"].astype(str).unique())
    if len(speakers) > max_speakers:
        rng = np.random.default_rng(seed)
        speakers = sorted(rng.choice(speakers, size=max_speakers, replace=False).tolist())
    e = e[e["speaker_id"].astype(str).isin(speakers)]
    x = e[cols].to_numpy(dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    n = len(x)
    method = "t-SNE"
    if n >= 5:
        perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
        xy = TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=seed, max_iter=1000
        ).fit_transform(x)
    else:  # too few points for t-SNE
        method = "PCA"
        k = min(2, n, x.shape[1])
        xy = np.zeros((n, 2))
        if n:
            xy[:, :k] = PCA(n_components=k, random_state=seed).fit_transform(x)
    spk = e["speaker_id"].astype(str).to_numpy()
    show_legend = len(speakers) <= 10
    with figure_style():
        fig = new_figure(SINGLE_COL + (1.0 if show_legend else 0), 3.2)
        ax = fig.add_subplot()
        for i, s in enumerate(speakers):
            sel = spk == s
            color = CYCLE[i % 7]  # skip yellow: poor contrast on white
            ax.scatter(
                xy[sel, 0],
                xy[sel, 1],
                s=9,
                color=color,
                marker=_MARKERS[(i // 7) % len(_MARKERS)],
                alpha=0.8,
                linewidths=0,
                label=s[:8],
            )
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{method} 1 (a.u.)")
        ax.set_ylabel(f"{method} 2 (a.u.)")
        ttl = "Test-window embeddings" + (f" ({model_label(model)})" if model else "")
        sub = f"{len(speakers)} speakers, {n} windows" + (f"; {subtitle}" if subtitle else "")
        ax.set_title(title(ttl, sub, 55))
        if show_legend:
            fig.legend(loc="outside right center", title="speaker", markerscale=1.5)
    return fig


# --------------------------------------------------------------------------- fit quality


def fit_quality(
    videos: pd.DataFrame,
    components: pd.DataFrame,
    dominant: Sequence[str] | None = None,
    subtitle: str = "",
) -> Figure:
    """Left: landmark NME per video (median and 90th percentile). Right: per-video
    correlation of fitted vs. true expression coefficients for the ``dominant`` components
    (default: all, in order), with the jaw-opening correlation as the first box.

    ``videos`` is ``results/flame/quality_videos.parquet`` (``nme_median, nme_p90,
    jaw_open_r``); ``components`` is ``quality_components.parquet`` (``component, r``).
    """
    comps = list(dominant) if dominant is not None else sorted(components["component"].unique())
    with figure_style():
        fig = new_figure(DOUBLE_COL, 2.7)
        ax1, ax2 = fig.subplots(1, 2, width_ratios=[1, 1.2])
        series = [
            (c, lbl, videos[c].dropna().to_numpy(float) * 100)
            for c, lbl in (("nme_median", "median over frames"), ("nme_p90", "90th percentile"))
            if c in videos.columns
        ]
        allv = np.concatenate([v for *_, v in series]) if series else np.array([])
        if allv.size:
            bins = np.histogram_bin_edges(allv, bins=min(25, max(6, int(np.sqrt(allv.size)))))
            for (_, lbl, v), col, ht in zip(
                series,
                (OKABE_ITO["blue"], OKABE_ITO["orange"]),
                ("stepfilled", "step"),
                strict=False,
            ):
                ax1.hist(
                    v,
                    bins=bins,
                    color=col,
                    histtype=ht,
                    alpha=0.7 if ht == "stepfilled" else 1.0,
                    lw=1.2,
                    label=lbl,
                )
            ax1.legend(loc="upper right")
        ax1.set_xlabel("Landmark NME (% of inter-ocular distance)")
        ax1.set_ylabel("Videos (count)")
        ax1.set_title(f"Landmark fit error (n = {len(videos)} videos)")

        data, labels, colors = [], [], []
        if "jaw_open_r" in videos.columns:
            data.append(videos["jaw_open_r"].dropna().to_numpy(float))
            labels.append("jaw\nopen")
            colors.append(OKABE_ITO["orange"])
        for c in comps:
            data.append(components.loc[components["component"] == c, "r"].dropna().to_numpy(float))
            labels.append(str(c).replace("expr_", "expr\n"))
            colors.append(OKABE_ITO["sky_blue"])
        if data:
            bp = ax2.boxplot(
                data,
                patch_artist=True,
                widths=0.6,
                showfliers=True,
                medianprops={"color": "black", "lw": 1.0},
                flierprops={"marker": ".", "ms": 3, "mec": "0.4"},
            )
            for patch, col in zip(bp["boxes"], colors, strict=True):
                patch.set_facecolor(col)
                patch.set_edgecolor("0.2")
            ax2.set_xticks(np.arange(1, len(labels) + 1), labels)
        ax2.axhline(0, color=GREY, lw=0.7, ls="--", zorder=0)
        ax2.set_ylim(-1.02, 1.02)
        ax2.set_ylabel("Pearson r, fitted vs. true (per video)")
        ax2.set_title("Expression recovery (dominant components)")
        ax2.yaxis.grid(True)
        ax2.set_axisbelow(True)
        if subtitle:
            fig.suptitle(subtitle, x=0.01, ha="left", fontsize=8, color="0.3")
    return fig


def fit_traces(
    fitted: pd.DataFrame,
    truth: pd.DataFrame,
    components: Sequence[str],
    seconds: float = 20.0,
    subtitle: str = "",
) -> Figure:
    """Fitted vs true parameter traces of one video (synthetic cohort), one panel per
    component, over the first ``seconds``: what the r values of ``fit_quality`` look like.

    ``fitted``: a FLAME table (``frame, time_s, valid`` and the components); ``truth``: the
    cohort's truth frames (``frame`` and the components). Invalid fitted frames are gaps.
    """
    joined = fitted.merge(truth[["frame", *components]], on="frame", suffixes=("", "_true"))
    joined = joined[joined["time_s"] <= joined["time_s"].min() + seconds]
    with figure_style():
        fig = new_figure(DOUBLE_COL, 0.95 * len(components) + 0.6)
        axes = fig.subplots(len(components), 1, sharex=True, squeeze=False)[:, 0]
        for ax, comp in zip(axes, components, strict=True):
            fit = joined[comp].where(joined["valid"].astype(bool))
            ax.plot(joined["time_s"], joined[f"{comp}_true"], color=GREY, lw=1.4, label="truth")
            ax.plot(joined["time_s"], fit, color=OKABE_ITO["blue"], lw=1.0, label="fitted")
            r = np.corrcoef(joined[comp][joined["valid"]], joined[f"{comp}_true"][joined["valid"]])
            ax.set_ylabel(
                comp.replace("expr_", "expr ").replace("jaw_0", "jaw open"),
                rotation=0,
                ha="right",
                va="center",
            )
            ax.text(
                1.0,
                1.02,
                f"r = {r[0, 1]:.2f}",
                transform=ax.transAxes,
                ha="right",
                va="bottom",
                fontsize=7.5,
            )
        axes[0].legend(loc="upper left", ncol=2, frameon=False, bbox_to_anchor=(0.0, 1.45))
        axes[-1].set_xlabel("Time (s)")
        if subtitle:
            fig.suptitle(subtitle, x=0.01, ha="left", fontsize=8, color="0.3")
    return fig


# --------------------------------------------------------------------------- legibility


_MEASURE_LABELS = {
    "mouth_opening": "mouth\nopening",
    "mouth_width": "mouth\nwidth",
    "brow_height": "brow\nheight",
    "eye_opening": "eye\nopening",
}


def _strip_box(ax: Any, data: Sequence[np.ndarray], color: str, seed: int = 0) -> None:
    """Boxes (no fliers) with every value drawn as a jittered dot on top."""
    rng = np.random.default_rng(seed)
    positions = np.arange(1, len(data) + 1)
    shown = [d if len(d) else np.array([np.nan]) for d in data]
    bp = ax.boxplot(
        shown,
        positions=positions,
        widths=0.55,
        patch_artist=True,
        showfliers=False,
        medianprops={"color": "black", "lw": 1.0},
    )
    for patch in bp["boxes"]:
        patch.set_facecolor("white")
        patch.set_edgecolor("0.3")
    for x, d in zip(positions, data, strict=True):
        jitter = rng.uniform(-0.16, 0.16, len(d))
        ax.scatter(x + jitter, d, s=7, color=color, alpha=0.75, linewidths=0, zorder=3)


def _target_mark(ax: Any, x: float, threshold: float, met: bool | None) -> None:
    color = OKABE_ITO["bluish_green"] if met else OKABE_ITO["vermillion"]
    ax.hlines(threshold, x - 0.38, x + 0.38, colors=color, linestyles="--", lw=1.1, zorder=4)


def legibility(videos: pd.DataFrame, summary: Mapping[str, Any], subtitle: str = "") -> Figure:
    """How well the detector reads the true facial motion, per video (synthetic cohort).

    Left: Pearson r of detected against true measure over each video's frames, one box and
    strip per measure. Middle: landmark NME per video (median over frames, % of the
    inter-ocular distance). Right: detection rate per video (% of sampled frames). Dashed
    lines mark the targets (``summary["targets"]``), green where the cohort meets them,
    vermillion where not.

    ``videos`` is ``results/landmarks/legibility.parquet`` (``<measure>_r``, ``nme_median``,
    ``detection_rate``); ``summary`` is ``legibility.json`` (``measures``, ``targets``).
    """
    measures = list(summary.get("measures") or _MEASURE_LABELS)
    targets = summary.get("targets") or {}
    with figure_style():
        fig = new_figure(DOUBLE_COL, 2.8)
        ax1, ax2, ax3 = fig.subplots(1, 3, width_ratios=[2.4, 1, 1])
        data = [videos[f"{m}_r"].dropna().to_numpy(float) for m in measures]
        _strip_box(ax1, data, OKABE_ITO["blue"])
        for i, m in enumerate(measures, start=1):
            t = targets.get(f"{m}_r")
            if t:
                _target_mark(ax1, i, float(t["threshold"]), t.get("met"))
        ax1.set_xticks(
            np.arange(1, len(measures) + 1), [_MEASURE_LABELS.get(m, m) for m in measures]
        )
        ax1.axhline(0, color=GREY, lw=0.7, ls=":", zorder=0)
        lows = [float(d.min()) for d in data if len(d)]
        ax1.set_ylim(min([-0.05, *lows]) - 0.03, 1.03)
        ax1.set_ylabel("Pearson r, detected vs. true (per video)")
        ax1.set_title("Facial measures read by the detector")
        ax1.yaxis.grid(True)
        ax1.set_axisbelow(True)
        for ax, col, key, ylabel, heading in (
            (ax2, "nme_median", "nme", "NME (% of inter-ocular distance)", "Landmark error"),
            (
                ax3,
                "detection_rate",
                "detection_rate",
                "Sampled frames with a face (%)",
                "Detection",
            ),
        ):
            values = _pct(videos[col].dropna().to_numpy(float))
            _strip_box(ax, [values], OKABE_ITO["orange"], seed=1)
            t = targets.get(key)
            if t:
                _target_mark(ax, 1, 100 * float(t["threshold"]), t.get("met"))
            ax.set_xticks([1], [f"{len(values)} videos"])
            ax.set_ylabel(ylabel)
            ax.set_title(heading)
            ax.yaxis.grid(True)
            ax.set_axisbelow(True)
        ax2.set_ylim(bottom=0)
        ax3.set_ylim(top=100.5)
        handles = [
            Line2D([], [], color=OKABE_ITO["bluish_green"], ls="--", lw=1.1, label="target, met"),
            Line2D([], [], color=OKABE_ITO["vermillion"], ls="--", lw=1.1, label="target, not met"),
            Line2D([], [], ls="", marker="o", ms=3, color="0.4", label="one video"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=3, columnspacing=1.2)
        if subtitle:
            fig.suptitle(subtitle, x=0.01, ha="left", fontsize=8, color="0.3")
    return fig
