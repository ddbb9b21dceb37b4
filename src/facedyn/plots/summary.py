"""``results/summary.md``: the run's headline numbers as a markdown page, generated (never
hand-typed) from ``metrics.json`` of every experiment, the DNR summary, the fit quality, the
landmark legibility, the QC table (every excluded video counted by reason), the folds'
exclusions (videos QC kept but an experiment could not use, e.g. a speaker with one session
under ``cross_session``) and the provenance of every file read (facedyn version, config
hash, input fingerprint)."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from facedyn.atomic import atomic_write
from facedyn.audit import MAIN_COHORT, audit_report
from facedyn.face.legibility import TARGETS
from facedyn.plots.style import MODEL_ORDER, model_label, ordered_models
from facedyn.qc import reason_label
from facedyn.tables import read_metadata, read_table

#: The provenance fields the page lists for every file it was generated from.
PROVENANCE_FIELDS = ("facedyn_version", "config_hash", "input_fingerprint")


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.1f} %"


def _num(x: Any, fmt: str = ".2f") -> str:
    return "n/a" if x is None else format(float(x), fmt)


def _ratio(x: Any) -> str:
    return "n/a" if x is None else f"{float(x):.1f}x"


def experiment_table(
    metrics: Mapping[str, Any], audit: Mapping[str, Any] | None = None
) -> list[str]:
    """One row per model: top-1 with CI, top-5, session top-1, EER, minDCF; with the audit's
    report (:func:`facedyn.audit.audit_report`), each model's leak floor and dynamics
    extraction efficiency beside its number."""
    head = "| model | top-1 [95 % CI] | top-5 | session top-1 | EER | minDCF |"
    rule = "|---|---|---|---|---|---|"
    if audit is not None:
        head += " leak floor (null) | efficiency (swap) |"
        rule += "---|---|"
    lines = [head, rule]
    models = metrics.get("models", {})
    order = [m for m in MODEL_ORDER if m in models] + [m for m in models if m not in MODEL_ORDER]
    for name in order:
        m = models[name]
        lo, hi = m.get("top1_ci") or (None, None)
        line = (
            f"| {model_label(name)} | {_pct(m.get('top1'))} [{_pct(lo)}, {_pct(hi)}] "
            f"| {_pct(m.get('top5'))} | {_pct(m.get('session_top1'))} "
            f"| {_num(m.get('eer'))} | {_num(m.get('min_dcf'))} |"
        )
        if audit is not None:
            d = audit["derived"].get(name) or {}
            line += f" {_ratio(d.get('leak_floor'))} | {_num(d.get('efficiency'))} |"
        lines.append(line)
    return lines


#: How the page names each legibility target (:data:`facedyn.face.legibility.TARGETS`).
_TARGET_LABELS = {
    "mouth_opening_r": "mouth opening r",
    "mouth_width_r": "mouth width r",
    "brow_height_r": "brow height r",
    "eye_opening_r": "eye opening r",
    "nme": "NME",
    "detection_rate": "detection",
}


def _target_text(name: str, target: Mapping[str, Any]) -> str:
    op = "\u2265" if target.get("op") == ">=" else "\u2264"
    threshold = float(target["threshold"])
    shown = f"{100 * threshold:g} %" if name == "detection_rate" else f"{threshold:g}"
    return f"{_TARGET_LABELS.get(name, name)} {op} {shown}"


def legibility_section(legibility: Mapping[str, Any]) -> list[str]:
    """ "Landmark legibility": median per-video r of each measure, NME, detection and which
    targets are met (``results/landmarks/legibility.json``)."""
    r = legibility.get("r_median") or {}
    measures = ", ".join(
        f"{m.replace('_', ' ')} {_num(r.get(m))}" for m in legibility.get("measures") or r
    )
    targets = legibility.get("targets") or {}
    # TARGETS order: the JSON file stores its keys sorted
    order = [n for n in TARGETS if n in targets] + sorted(n for n in targets if n not in TARGETS)
    met = [_target_text(n, targets[n]) for n in order if targets[n].get("met")]
    missed = [_target_text(n, targets[n]) for n in order if not targets[n].get("met")]
    line = (
        f"Detector vs true landmarks over {legibility.get('videos')} videos, median "
        f"per-video Pearson r: {measures}; NME median "
        f"{_num(legibility.get('nme_median'), '.3f')}; detection "
        f"{_pct(legibility.get('detection_rate'))} of sampled frames."
    )
    verdict = (
        f"Targets met: {len(met)} of {len(targets)}"
        + (f" ({'; '.join(met)})" if met else "")
        + (f"; not met: {'; '.join(missed)}" if missed else "")
        + "."
    )
    return ["## Landmark legibility", "", line, verdict, ""]


def qc_section(
    qc: pd.DataFrame, fold_exclusions: Mapping[str, Mapping[str, str]] | None = None
) -> list[str]:
    """Every video of the QC table counted: ok, excluded by reason, kept with a note; then,
    per experiment, the QC-ok videos its folds could not use, by reason."""
    excluded = qc[qc["status"] != "ok"]
    lines = [
        "## Quality control and exclusions",
        "",
        f"`results/qc/videos.parquet`: {len(qc)} videos, {len(qc) - len(excluded)} ok, "
        f"{len(excluded)} excluded.",
        "",
    ]
    codes = qc["reason_code"] if "reason_code" in qc else pd.Series([""] * len(qc), index=qc.index)
    if len(excluded):
        lines += ["| excluded because | code | videos |", "|---|---|---|"]
        for code, n in sorted(Counter(codes[excluded.index]).items()):
            lines.append(f"| {reason_label(code)} | `{code}` | {n} |")
        lines.append("")
    noted = Counter(c for c in codes[qc["status"] == "ok"] if c)
    if noted:
        lines += ["| kept, with a note | code | videos |", "|---|---|---|"]
        for code, n in sorted(noted.items()):
            lines.append(f"| {reason_label(code)} | `{code}` | {n} |")
        lines.append("")
    qc_excluded = {f"{r.session_id}/{r.speaker_id}" for r in excluded.itertuples()}
    rows = []
    for name, by_video in sorted((fold_exclusions or {}).items()):
        beyond = Counter(reason for video, reason in by_video.items() if video not in qc_excluded)
        rows += [f"| `{name}` | {reason} | {n} |" for reason, n in sorted(beyond.items())]
    if rows:
        lines += [
            "Videos that passed QC but an experiment could not use "
            "(`results/identify/<experiment>/folds.parquet`):",
            "",
            "| experiment | excluded because | videos |",
            "|---|---|---|",
            *rows,
            "",
        ]
    return lines


def provenance_section(
    sources: Sequence[tuple[str, Mapping[str, Any]]], own: Mapping[str, Any] | None = None
) -> list[str]:
    """What the page was generated from: each file's facedyn version, config hash and input
    fingerprint (``provenance`` of its JSON or table metadata)."""
    lines = ["## Provenance", ""]
    if own:
        lines += [
            f"This page: facedyn {own.get('facedyn_version', 'n/a')}, config hash "
            f"`{own.get('config_hash', 'n/a')}`, input fingerprint "
            f"`{own.get('input_fingerprint', 'n/a')}` (over the files below).",
            "",
        ]
    lines += ["| file | facedyn | config hash | input fingerprint |", "|---|---|---|---|"]
    for name, prov in sources:
        version, chash, finger = (prov.get(k, "n/a") for k in PROVENANCE_FIELDS)
        lines.append(f"| `{name}` | {version} | `{chash}` | `{finger}` |")
    lines.append("")
    return lines


#: How the audit's table names its cohorts.
_COHORT_LABELS = {
    MAIN_COHORT: "main",
    "null_dynamics": "null",
    "swap": "swap",
    "null_swap": "null + swap",
}


def _cell(e: Mapping[str, Any] | None) -> str:
    if e is None:
        return "-"
    lo, hi = e["ci"]
    return f"{_pct(e['top1'])} [{_pct(lo)}, {_pct(hi)}]"


def _leak_line(metrics: Mapping[str, Any]) -> str | None:
    """The experiment's appearance leak statistic per dynamics model, in one sentence."""
    leaks = metrics.get("appearance_leak") or {}
    parts = [
        f"{model_label(m)} rho {_num(v['spearman_rho'])} (p {_num(v['p_value'], '.3f')})"
        for m, v in leaks.items()
        if v.get("spearman_rho") is not None
    ]
    if not parts:
        return None
    return (
        "Appearance leak without a control (Spearman rho of speaker-pair confusions with face "
        "similarity; > 0 with a small p: confusions follow appearance): " + ", ".join(parts) + "."
    )


def _chances(row: Mapping[str, Any], cohorts: list[str]) -> list[float]:
    """The distinct chance levels of one audit row's cells in ``cohorts``."""
    entries = [row.get(f"{c}:{src}") for c in cohorts for src in ("fitted", "truth")]
    return sorted({round(float(e["chance"]), 4) for e in entries if e and e["chance"] is not None})


def audit_section(report: Mapping[str, Any]) -> list[str]:
    """ "Appearance-leak audit": every model on the main cohort and every control, fitted
    and truth, the derived leak floor and extraction efficiency, the checks and the verdict
    (:func:`facedyn.audit.audit_report`)."""
    cells = report["cells"]
    cohorts = list(cells)
    out = [
        "## Appearance-leak audit",
        "",
        "The same pipeline on synthetic control cohorts beside the main one: "
        + "; ".join(
            f"**{_COHORT_LABELS.get(c, c)}**: {cell['dynamics']} dynamics, {cell['face']} faces"
            for c, cell in cells.items()
        )
        + ". With shared dynamics, identification from expression + jaw must sit at chance; "
        "with swapped faces, appearance carries no identity across sessions. Top-1 [95 % CI] "
        "on fitted features and on the truth:",
        "",
    ]
    heads = [f"{_COHORT_LABELS.get(c, c)} {src}" for c in cohorts for src in ("fitted", "truth")]
    by_model = {row["model"]: row for row in report["rows"]}
    rows = [by_model[m] for m in ordered_models(by_model)]
    out += [
        "| model | " + " | ".join(heads) + " | chance (main / controls) |",
        "|---|" + "---|" * len(heads) + "---|",
    ]
    for row in rows:
        # the main cohort's chance, then the controls' (another size, another chance)
        chances = _chances(row, cohorts[:1]) + _chances(row, cohorts[1:])
        cells_s = [_cell(row.get(f"{c}:{src}")) for c in cohorts for src in ("fitted", "truth")]
        out.append(
            f"| {model_label(row['model'])} | "
            + " | ".join(cells_s)
            + f" | {' / '.join(_pct(c) for c in chances)} |"
        )
    out += [
        "",
        "| model | main top-1 / chance | leak floor: null fitted top-1 / chance | "
        "efficiency: swap fitted / swap truth |",
        "|---|---|---|---|",
    ]
    for row in rows:
        if row["model"] == "chance":
            continue
        d = report["derived"].get(row["model"]) or {}
        out.append(
            f"| {model_label(row['model'])} | {_ratio(d.get('main_over_chance'))} | "
            f"{_ratio(d.get('leak_floor'))} | {_num(d.get('efficiency'))} |"
        )
    leaks = report.get("leak") or {}
    if leaks:
        out += [
            "",
            "The leak statistic that needs no control, per cohort (the encoder's speaker-pair "
            "confusions against face similarity: it should be high where faces identify "
            "(null) and near 0 where they cannot (swap)):",
            "",
            "| cohort | source | rho | p | confusions to the most similar tenth (expected) |",
            "|---|---|---|---|---|",
        ]
        for (cohort, source), v in leaks.items():
            out.append(
                f"| {_COHORT_LABELS.get(cohort, cohort)} | {source} | {_num(v['spearman_rho'])} "
                f"| {_num(v['p_value'], '.3f')} | {_pct(v.get('confused_share'))} "
                f"({_pct(v.get('confused_share_expected'))}) |"
            )
    failed = [c for c in report["checks"] if c["met"] is False]
    out += [
        "",
        f"Checks: {sum(c['met'] is True for c in report['checks'])} of "
        f"{len(report['checks'])} met (at chance: the speaker-bootstrap test rejects chance "
        f"at no less than {report['alpha']:g} over all "
        f"{report['chance_family']} such checks together, Bonferroni; far above: "
        f"95 % CI from {report['far_above_chance']:g}x chance up).",
    ]
    for c in failed:
        lo, hi = c["top1_ci"]
        p = c.get("p_chance")
        out.append(
            f"- not met: {_COHORT_LABELS.get(c['cohort'], c['cohort'])} {c['source']}, "
            f"{model_label(c['model'])} {_pct(c['top1'])} [{_pct(lo)}, {_pct(hi)}] "
            f"(chance {_pct(c['chance'])}"
            + ("" if p is None else f", p {_num(p, '.3f')}")
            + f"), expected {c['expected']}"
        )
    out += [
        "",
        "**Audit passed**: on these controls the pipeline identifies dynamics, not appearance."
        if report["passed"]
        else "**Audit failed**: on the controls, something other than dynamics identifies "
        "speakers; read every main number against its leak floor.",
        "",
    ]
    return out


def summary_markdown(
    run_name: str,
    metrics: Sequence[Mapping[str, Any]],
    dnr: Mapping[str, Any] | None = None,
    quality: Mapping[str, Any] | None = None,
    main: str | None = None,
    qc: pd.DataFrame | None = None,
    legibility: Mapping[str, Any] | None = None,
    fold_exclusions: Mapping[str, Mapping[str, str]] | None = None,
    sources: Sequence[tuple[str, Mapping[str, Any]]] | None = None,
    own_provenance: Mapping[str, Any] | None = None,
    audit: Mapping[str, Any] | None = None,
) -> str:
    """The page: main experiment in full (with the audit's leak floor and efficiency beside
    every model), the appearance-leak audit (with ``audit``, :func:`facedyn.audit.audit_report`),
    every experiment's encoder in one table, DNR, fit quality, landmark legibility, QC and
    exclusions (with ``qc``), provenance (with ``sources``)."""
    out = [
        f"# facedyn results: run `{run_name}`",
        "",
        "Generated from `results/`; every number is recomputable from the files named.",
        "",
    ]
    by_name = {m["experiment"]: m for m in metrics}
    main_m = by_name.get(main) if main else None
    if main_m is not None:
        out += [
            f"## Main experiment `{main}` ({main_m.get('protocol')}, "
            f"{main_m.get('n_speakers')} speakers, chance {_pct(main_m.get('chance'))})",
            "",
        ]
        out += [*experiment_table(main_m, audit), ""]
        corr = main_m.get("dnr_vs_accuracy") or {}
        if corr:
            out.append(
                f"DNR vs per-speaker top-1 ({corr.get('model')}): Spearman rho "
                f"{_num(corr.get('spearman_rho'))} (p {_num(corr.get('spearman_p'), '.3f')}), "
                f"n = {corr.get('n')}."
            )
        if main_m.get("extraction_efficiency") is not None:
            out.append(
                f"Extraction efficiency (pipeline / ground-truth ceiling, top-1): "
                f"{_num(main_m['extraction_efficiency'])}."
            )
        leak_line = _leak_line(main_m)
        if leak_line:
            out.append(leak_line)
        vs = (main_m.get("comparisons") or {}).get("stats_lr")
        if vs:
            lo, hi = vs["top1_diff_ci"]
            out.append(
                f"{model_label(vs['model'])} minus {model_label('stats_lr')}, paired on "
                f"the same windows: {100 * vs['top1_diff']:+.1f} points of top-1 "
                f"(95 % CI {100 * lo:+.1f} to {100 * hi:+.1f}; Wilcoxon p "
                f"{_num(vs['wilcoxon_p'], '.3f')} over {vs['n_speakers']} speakers)."
            )
        out.append("")
    if audit is not None:
        out += audit_section(audit)
    out += [
        "## Every experiment",
        "",
        "| experiment | protocol | source | speakers | encoder top-1 | best baseline top-1 |",
        "|---|---|---|---|---|---|",
    ]
    for m in metrics:
        models = m.get("models", {})
        enc = (m.get("settings") or {}).get("encoder", "conformer")
        base = {k: v for k, v in models.items() if k not in (enc, "chance")}
        best = max(base.items(), key=lambda kv: kv[1].get("top1") or 0, default=None)
        best_s = f"{model_label(best[0])} {_pct(best[1].get('top1'))}" if best else "n/a"
        status = "" if m.get("status", "ok") == "ok" else f" ({m.get('status')})"
        out.append(
            f"| `{m['experiment']}`{status} | {m.get('protocol')} | {m.get('source')} | "
            f"{m.get('n_speakers')} | {_pct((models.get(enc) or {}).get('top1'))} | "
            f"{best_s} |"
        )
    out.append("")
    if dnr:
        check = dnr.get("synthetic_check") or {}
        out += [
            "## Drift-to-noise ratio",
            "",
            f"{dnr.get('n_speakers_with_dnr')} speakers with a DNR; median "
            f"{_num((dnr.get('dnr') or {}).get('median'))} "
            f"(IQR {_num((dnr.get('dnr') or {}).get('iqr'))}).",
        ]
        if check:
            out.append(
                f"Against the generator's instability (Spearman): DNR "
                f"{_num(check.get('spearman_rho'))}, drift "
                f"{_num(check.get('drift_spearman_rho'))}, noise "
                f"{_num(check.get('noise_spearman_rho'))}."
            )
        out.append("")
    if quality:
        out += [
            "## FLAME fit against the synthetic truth",
            "",
            f"Expression r (median over the dominant components): "
            f"{_num(quality.get('expression_r_median'))}; over the head's dominant "
            f"expression modes: {_num(quality.get('expression_mode_r_median'))}; "
            f"jaw opening r "
            f"{_num(quality.get('jaw_open_r_median'))}; landmark NME median "
            f"{_num(quality.get('nme_median'), '.3f')} (docs/fitting.md).",
            "",
        ]
    if legibility:
        out += legibility_section(legibility)
    if qc is not None:
        out += qc_section(qc, fold_exclusions)
    if sources is not None:
        out += provenance_section(sources, own_provenance)
    return "\n".join(out)


def _display(path: str | os.PathLike[str]) -> str:
    """A results file's name from ``results/`` on (the page names files that way)."""
    parts = Path(path).parts
    return "/".join(parts[parts.index("results") :]) if "results" in parts else str(path)


def write_summary(
    out: str | os.PathLike[str],
    run_name: str,
    metrics_paths: Sequence[str],
    dnr_summary: str | None = None,
    quality: str | None = None,
    main: str | None = None,
    qc: str | None = None,
    folds: Sequence[str] | None = None,
    provenance: Mapping[str, Any] | None = None,
    legibility: str | None = None,
    audit_cohorts: Mapping[str, Mapping[str, Any]] | None = None,
    ceiling: str | None = None,
) -> Path:
    """Read the results and write the page atomically.

    ``legibility`` (``results/landmarks/legibility.json``) adds the landmark legibility;
    ``audit_cohorts`` (:func:`facedyn.audit.audit_cohorts`) the appearance-leak audit, read
    from the audit experiments' metrics with the main and ``ceiling`` experiments;
    ``qc`` (the QC table) adds the QC section; ``folds`` (each experiment's folds.parquet)
    its exclusions beyond QC; ``provenance`` is the page's own record (the summary job's).
    Every file read is listed with its provenance.
    """
    metrics = [json.loads(Path(p).read_text()) for p in metrics_paths]
    dnr = json.loads(Path(dnr_summary).read_text()) if dnr_summary else None
    qual = json.loads(Path(quality).read_text()) if quality else None
    legible = json.loads(Path(legibility).read_text()) if legibility else None
    sources: list[tuple[str, Mapping[str, Any]]] = [
        (_display(p), m.get("provenance") or {})
        for p, m in zip(metrics_paths, metrics, strict=True)
    ]
    for path, doc in ((dnr_summary, dnr), (quality, qual), (legibility, legible)):
        if path and doc is not None:
            sources.append((_display(path), doc.get("provenance") or {}))
    qc_table = None
    if qc:
        qc_table, qc_meta = read_table(qc)
        sources.append((_display(qc), qc_meta.get("provenance") or {}))
    exclusions: dict[str, Mapping[str, str]] = {}
    for path in folds or ():
        meta = read_metadata(path)
        name = (meta.get("settings") or {}).get("name") or Path(path).parent.name
        exclusions[name] = (meta.get("summary") or {}).get("excluded") or {}
        sources.append((_display(path), meta.get("provenance") or {}))
    text = summary_markdown(
        run_name,
        metrics,
        dnr,
        qual,
        main,
        qc=qc_table,
        legibility=legible,
        fold_exclusions=exclusions,
        sources=sources,
        own_provenance=provenance,
        audit=audit_report(metrics, audit_cohorts, main, ceiling) if audit_cohorts else None,
    )
    return atomic_write(out, lambda p: p.write_text(text + "\n"))
