"""``results/summary.md``: the run's headline numbers as a markdown page, generated (never
hand-typed) from ``metrics.json`` of every experiment, the DNR summary and the fit quality."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from facedyn.atomic import atomic_write
from facedyn.plots.style import MODEL_ORDER, model_label


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.1f} %"


def _num(x: Any, fmt: str = ".2f") -> str:
    return "n/a" if x is None else format(float(x), fmt)


def experiment_table(metrics: Mapping[str, Any]) -> list[str]:
    """One row per model: top-1 with CI, top-5, session top-1, EER, minDCF."""
    lines = ["| model | top-1 [95 % CI] | top-5 | session top-1 | EER | minDCF |",
             "|---|---|---|---|---|---|"]
    models = metrics.get("models", {})
    order = [m for m in MODEL_ORDER if m in models] + [m for m in models if m not in MODEL_ORDER]
    for name in order:
        m = models[name]
        lo, hi = m.get("top1_ci") or (None, None)
        lines.append(f"| {model_label(name)} | {_pct(m.get('top1'))} [{_pct(lo)}, {_pct(hi)}] "
                     f"| {_pct(m.get('top5'))} | {_pct(m.get('session_top1'))} "
                     f"| {_num(m.get('eer'))} | {_num(m.get('min_dcf'))} |")
    return lines


def summary_markdown(run_name: str, metrics: Sequence[Mapping[str, Any]],
                     dnr: Mapping[str, Any] | None = None,
                     quality: Mapping[str, Any] | None = None,
                     main: str | None = None) -> str:
    """The page: main experiment in full, every experiment's encoder in one table, DNR and
    fit quality."""
    out = [f"# facedyn results: run `{run_name}`", "",
           "Generated from `results/`; every number is recomputable from the files named.", ""]
    by_name = {m["experiment"]: m for m in metrics}
    main_m = by_name.get(main) if main else None
    if main_m is not None:
        out += [f"## Main experiment `{main}` ({main_m.get('protocol')}, "
                f"{main_m.get('n_speakers')} speakers, chance {_pct(main_m.get('chance'))})", ""]
        out += [*experiment_table(main_m), ""]
        corr = main_m.get("dnr_vs_accuracy") or {}
        if corr:
            out.append(f"DNR vs per-speaker top-1 ({corr.get('model')}): Spearman rho "
                       f"{_num(corr.get('spearman_rho'))} (p {_num(corr.get('spearman_p'), '.3f')}), "
                       f"n = {corr.get('n')}.")
        if main_m.get("extraction_efficiency") is not None:
            out.append(f"Extraction efficiency (pipeline / ground-truth ceiling, top-1): "
                       f"{_num(main_m['extraction_efficiency'])}.")
        out.append("")
    out += ["## Every experiment", "",
            "| experiment | protocol | source | speakers | encoder top-1 | best baseline top-1 |",
            "|---|---|---|---|---|---|"]
    for m in metrics:
        models = m.get("models", {})
        enc = (m.get("settings") or {}).get("encoder", "conformer")
        base = {k: v for k, v in models.items() if k not in (enc, "chance")}
        best = max(base.items(), key=lambda kv: kv[1].get("top1") or 0, default=None)
        best_s = f"{model_label(best[0])} {_pct(best[1].get('top1'))}" if best else "n/a"
        status = "" if m.get("status", "ok") == "ok" else f" ({m.get('status')})"
        out.append(f"| `{m['experiment']}`{status} | {m.get('protocol')} | {m.get('source')} | "
                   f"{m.get('n_speakers')} | {_pct((models.get(enc) or {}).get('top1'))} | "
                   f"{best_s} |")
    out.append("")
    if dnr:
        check = dnr.get("synthetic_check") or {}
        out += ["## Drift-to-noise ratio", "",
                f"{dnr.get('n_speakers_with_dnr')} speakers with a DNR; median "
                f"{_num((dnr.get('dnr') or {}).get('median'))} "
                f"(IQR {_num((dnr.get('dnr') or {}).get('iqr'))})."]
        if check:
            out.append(f"Against the generator's instability (Spearman): DNR "
                       f"{_num(check.get('spearman_rho'))}, drift "
                       f"{_num(check.get('drift_spearman_rho'))}, noise "
                       f"{_num(check.get('noise_spearman_rho'))}.")
        out.append("")
    if quality:
        out += ["## FLAME fit against the synthetic truth", "",
                f"Expression r (median over the dominant components): "
                f"{_num(quality.get('expression_r_median'))}; jaw opening r "
                f"{_num(quality.get('jaw_open_r_median'))}; landmark NME median "
                f"{_num(quality.get('nme_median'), '.3f')} (docs/fitting.md).", ""]
    return "\n".join(out)


def write_summary(out: str | os.PathLike[str], run_name: str, metrics_paths: Sequence[str],
                  dnr_summary: str | None = None, quality: str | None = None,
                  main: str | None = None) -> Path:
    """Read the results and write the page atomically."""
    metrics = [json.loads(Path(p).read_text()) for p in metrics_paths]
    dnr = json.loads(Path(dnr_summary).read_text()) if dnr_summary else None
    qual = json.loads(Path(quality).read_text()) if quality else None
    text = summary_markdown(run_name, metrics, dnr, qual, main)
    return atomic_write(out, lambda p: p.write_text(text + "\n"))
