"""The appearance-leak audit: synthetic control cohorts that run beside every main result.

The question the pipeline answers, identity from facial *dynamics* with appearance removed,
can only be trusted if the same pipeline, on cohorts whose identity is known to lie only in
appearance or only in dynamics, finds exactly that. The audit is a 2x2 of synthetic cohorts,
{own, shared} dynamics x {own, swapped} face:

- ``main``: the run's own dataset (own dynamics, own face);
- ``null_dynamics``: every speaker draws from one dynamics distribution (``signature_strength: 0``)
  but keeps their face: whatever identifies them from expression + jaw is a leak;
- ``swap``: every session of a speaker has a new face (``portrait`` and ``head_shape``
  drawn per session) while the speaker keeps their dynamic signature: cross-session
  identification measures dynamics alone, and its ratio to the truth on the same cohort is an
  extraction efficiency that a leak cannot inflate;
- ``null_swap``: shared dynamics and a new face every session: nothing identifies anyone,
  so every model must sit at chance (the audit's own sanity check).

``audit.cohorts`` in the config names the control cohorts (overrides of ``dataset.synthetic``
merged with ``audit.size``); :func:`audit_cohorts` resolves them, :func:`audit_experiments`
adds one identification experiment per cohort and source, and :func:`audit_report` reads
their metrics into the table, the derived figures and the verdict that ``results/summary.md``
states. Only this report (validation) knows which cohort is a control; every stage that
processes video treats a control cohort as it treats any other.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from facedyn.synthetic.generate import CohortConfig

#: The run's own dataset, as a value of the manifest's and the experiments' ``cohort``.
MAIN_COHORT = "main"
#: Prefix of the audit's experiment names (``audit_<cohort>``, ``audit_<cohort>_truth``).
EXPERIMENT_PREFIX = "audit_"
#: Models that see appearance (the face's shape or texture), not the dynamics.
APPEARANCE_MODELS = ("shape_only", "appearance_only")
#: The control cohorts every run has unless its config turns them off (mirrors the schema's
#: ``audit.cohorts`` default; a config's ``audit.cohorts`` is merged over it per cohort).
DEFAULT_COHORTS: dict[str, dict[str, Any]] = {
    "null_dynamics": {"signature_strength": 0, "instability": [1.0, 1.0]},
    "swap": {"portrait": "session", "head_shape": "session"},
    "null_swap": {
        "signature_strength": 0,
        "instability": [1.0, 1.0],
        "portrait": "session",
        "head_shape": "session",
    },
}
#: "Far above chance": the lower end of the top-1 CI at least this many times chance.
FAR_ABOVE_CHANCE = 3.0
#: Family-wise error rate of the "at chance" checks together: with k of them, each fails
#: only when its bootstrap p-value against chance is below ALPHA / k (Bonferroni), so an
#: audit whose controls all sit at chance fails with probability at most ALPHA (k checks
#: at 95 % each would fail a sound audit more often than not).
ALPHA = 0.05


class AuditError(ValueError):
    """An ``audit`` configuration that cannot run (names the key to fix)."""


def derived_seed(seed: int, cohort: str) -> int:
    """A control cohort's seed: the main cohort's seed and the cohort's name, hashed, so
    that every control cohort differs from the main one and from each other and follows
    the main cohort's seed (a seed spread moves the controls too)."""
    return (int(seed) * 1_000_003 + zlib.crc32(cohort.encode())) % (2**31 - 1)


def audit_cohorts(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The control cohorts: name -> their ``dataset.synthetic`` settings, fully merged.

    The cohorts are :data:`DEFAULT_COHORTS` with ``audit.cohorts`` merged over them (a
    cohort's keys over the default's keys of the same name, ``false`` turns a cohort off, a
    new name adds one), so a config that adds or changes one cohort keeps the others. Each is
    ``dataset.synthetic``, then ``audit.size``, then the cohort's own overrides, with
    ``name`` ``<main name>-<cohort>`` and a :func:`derived_seed` unless the overrides set
    them.
    """
    audit = config.get("audit") or {}
    base = dict(config["dataset"]["synthetic"])
    size = dict(audit.get("size") or {})
    out: dict[str, dict[str, Any]] = {}
    for name, overrides in _merged_cohorts(audit.get("cohorts") or {}).items():
        if overrides is False:
            continue
        if name == MAIN_COHORT:
            raise AuditError(f"audit.cohorts: {MAIN_COHORT!r} names the run's own dataset")
        if not isinstance(overrides, Mapping):
            raise AuditError(f"audit.cohorts.{name} must be a mapping of dataset.synthetic keys")
        merged = {**base, **size, **overrides}
        merged.setdefault("name", base.get("name", "default"))
        if "name" not in overrides:
            merged["name"] = f"{base.get('name', 'default')}-{name}"
        if "seed" not in overrides:
            merged["seed"] = derived_seed(int(base.get("seed", 0)), name)
        try:
            CohortConfig.from_mapping({k: v for k, v in merged.items() if k != "workers"})
        except (TypeError, ValueError) as err:
            raise AuditError(f"audit.cohorts.{name}: {err}") from None
        out[name] = merged
    names = [s["name"] for s in out.values()] + [base.get("name")]
    if len(set(names)) != len(names):
        raise AuditError(f"audit.cohorts: two cohorts write to one folder ({sorted(names)})")
    return out


def _merged_cohorts(given: Mapping[str, Any]) -> dict[str, Any]:
    """:data:`DEFAULT_COHORTS` with ``given`` merged over them, one level deep."""
    out: dict[str, Any] = {name: dict(spec) for name, spec in DEFAULT_COHORTS.items()}
    for name, spec in given.items():
        if isinstance(spec, Mapping) and isinstance(out.get(name), Mapping):
            out[name] = {**out[name], **spec}
        else:
            out[name] = spec
    return out


def experiment_name(cohort: str, source: str) -> str:
    """The audit experiment of one control cohort and feature source."""
    return f"{EXPERIMENT_PREFIX}{cohort}" + ("_truth" if source == "truth" else "")


def audit_experiments(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """One identification experiment per control cohort and source (``audit.sources``):
    the overrides of ``audit.experiment`` (default: ``identify.main_experiment``) with the
    cohort and source set. Empty when the audit has no cohorts."""
    cohorts = audit_cohorts(config)
    if not cohorts:
        return {}
    audit = config.get("audit") or {}
    identify = config["identify"]
    experiments = identify.get("experiments") or {}
    base_name = audit.get("experiment") or identify.get("main_experiment")
    if base_name not in experiments or experiments[base_name] is False:
        raise AuditError(
            f"audit.experiment: {base_name!r} is not a configured experiment "
            f"({sorted(n for n, v in experiments.items() if v is not False)})"
        )
    base = dict(experiments[base_name] or {})
    if base.get("source", identify.get("source", "fitted")) != "fitted":
        raise AuditError(f"audit.experiment: {base_name!r} must read fitted features")
    out = {}
    for cohort in cohorts:
        for source in audit.get("sources") or ("fitted", "truth"):
            name = experiment_name(cohort, source)
            if name in experiments:
                raise AuditError(f"identify.experiments.{name}: the name is the audit's")
            out[name] = {**base, "cohort": cohort, "source": source}
    return out


# --- the report ----------------------------------------------------------------------------------


def _cell_metrics(
    metrics: Sequence[Mapping[str, Any]], main: str | None, ceiling: str | None
) -> dict[tuple[str, str], Mapping[str, Any]]:
    """(cell, source) -> that experiment's metrics document."""
    out: dict[tuple[str, str], Mapping[str, Any]] = {}
    for m in metrics:
        name = str(m.get("experiment"))
        if name == main:
            out[(MAIN_COHORT, "fitted")] = m
        elif name == ceiling:
            out[(MAIN_COHORT, "truth")] = m
        elif name.startswith(EXPERIMENT_PREFIX):
            settings = m.get("settings") or {}
            cohort = settings.get("cohort") or name[len(EXPERIMENT_PREFIX) :].removesuffix("_truth")
            out[(str(cohort), str(m.get("source", settings.get("source", "fitted"))))] = m
    return out


def _entry(m: Mapping[str, Any] | None, model: str) -> dict[str, Any] | None:
    if m is None:
        return None
    entry = (m.get("models") or {}).get(model)
    if not entry or entry.get("top1") is None:
        return None
    ci = entry.get("top1_ci") or [None, None]
    return {
        "top1": float(entry["top1"]),
        "ci": ci,
        "chance": m.get("chance"),
        "p_chance": entry.get("top1_p_chance"),
    }


def _at_chance(check: Mapping[str, Any], family: int) -> bool | None:
    """Chance not rejected at ``ALPHA / family`` (Bonferroni); for metrics without a
    p-value, the 95 % CI includes chance."""
    if check.get("p_chance") is not None:
        return bool(float(check["p_chance"]) * max(family, 1) >= ALPHA)
    lo, hi = check["top1_ci"]
    if lo is None or hi is None or check["chance"] is None:
        return None
    return bool(lo <= check["chance"] <= hi)


def _far_above(e: Mapping[str, Any]) -> bool | None:
    lo = e["ci"][0]
    if lo is None or e["chance"] is None:
        return None
    return bool(lo >= FAR_ABOVE_CHANCE * e["chance"])


def audit_report(
    metrics: Sequence[Mapping[str, Any]],
    cohorts: Mapping[str, Mapping[str, Any]],
    main_experiment: str | None,
    ceiling_experiment: str | None,
) -> dict[str, Any]:
    """The audit's table, derived figures and verdict from the experiments' metrics.

    Args:
        metrics: ``metrics.json`` documents of the main, ceiling and audit experiments
            (others are ignored).
        cohorts: the control cohorts' settings (:func:`audit_cohorts`); each cohort's cell of
            the 2x2 is read from them (``signature_strength`` 0: shared dynamics;
            ``portrait`` and ``head_shape`` both ``session``: swapped faces).
        main_experiment, ceiling_experiment: the run's main experiment and its truth.

    Returns:
        ``cells`` (cohort -> ``{"dynamics", "face"}``), ``rows`` (one per model: for every
        cohort and source the top-1, CI and chance), ``derived`` (per model: ``leak_floor``,
        null fitted top-1 over chance; ``efficiency``, swap fitted top-1 over the swap truth's
        top-1 of the same model; ``main_over_chance``), ``checks`` (each expectation with
        whether it held; the "at chance" ones at a family-wise ``alpha`` over
        ``chance_family`` of them), ``leak`` ((cohort, source) -> the encoder's appearance leak
        statistic, :mod:`facedyn.identify.leak`) and ``passed`` (every check that could be judged held, and the null
        and null-swap checks were judged), ``far_above_chance``.
    """
    cells = {MAIN_COHORT: {"dynamics": "own", "face": "own"}}
    for name, s in cohorts.items():
        shared = float(s.get("signature_strength", 1.0)) == 0.0
        swapped = s.get("portrait") == "session" and s.get("head_shape") == "session"
        cells[name] = {
            "dynamics": "shared" if shared else "own",
            "face": "swapped" if swapped else "own",
        }
    by_cell = _cell_metrics(metrics, main_experiment, ceiling_experiment)
    models: list[str] = []
    for m in by_cell.values():
        for model in m.get("models") or {}:
            if model not in models:
                models.append(model)
    rows, derived, checks = [], {}, []
    for model in models:
        row: dict[str, Any] = {"model": model}
        for cohort in cells:
            for source in ("fitted", "truth"):
                row[f"{cohort}:{source}"] = _entry(by_cell.get((cohort, source)), model)
        rows.append(row)
        appearance = model in APPEARANCE_MODELS
        figures: dict[str, float | None] = {"leak_floor": None, "efficiency": None}
        for cohort, cell in cells.items():
            fitted = row.get(f"{cohort}:fitted")
            truth = row.get(f"{cohort}:truth")
            if cell == {"dynamics": "shared", "face": "own"}:
                if fitted and fitted["chance"]:
                    figures["leak_floor"] = fitted["top1"] / fitted["chance"]
                for source, e in (("fitted", fitted), ("truth", truth)):
                    if e is None or model == "chance":
                        continue
                    if appearance:
                        checks.append(_check(cohort, source, model, "far above chance", e))
                    else:
                        checks.append(_check(cohort, source, model, "chance", e))
            elif cell == {"dynamics": "own", "face": "swapped"}:
                if fitted and truth and truth["top1"] > 0:
                    figures["efficiency"] = fitted["top1"] / truth["top1"]
                for source, e in (("fitted", fitted), ("truth", truth)):
                    if e is not None and appearance:
                        checks.append(_check(cohort, source, model, "chance", e))
            elif cell == {"dynamics": "shared", "face": "swapped"}:
                for source, e in (("fitted", fitted), ("truth", truth)):
                    if e is not None and model != "chance":
                        checks.append(_check(cohort, source, model, "chance", e))
        main = row.get(f"{MAIN_COHORT}:fitted")
        figures["main_over_chance"] = (
            main["top1"] / main["chance"] if main and main["chance"] else None
        )
        derived[model] = figures
    # The swap control can only measure dynamics if the truth carries them across faces.
    for cohort, cell in cells.items():
        if cell == {"dynamics": "own", "face": "swapped"}:
            m = by_cell.get((cohort, "truth"))
            if m is not None:
                model = str((m.get("settings") or {}).get("encoder", "conformer"))
                e = _entry(m, model)
                if e is not None:
                    checks.append(_check(cohort, "truth", model, "far above chance", e))
    leak = {}
    for (cohort, source), m in by_cell.items():
        encoder = str((m.get("settings") or {}).get("encoder", "conformer"))
        stat = (m.get("appearance_leak") or {}).get(encoder)
        if stat and stat.get("spearman_rho") is not None:
            leak[(cohort, source)] = stat
    family = sum(c["expected"] == "chance" for c in checks)
    for c in checks:
        if c["expected"] == "chance":
            c["met"] = _at_chance(c, family)
    judged = {(c["cohort"]) for c in checks if c["met"] is not None}
    needed = {c for c, cell in cells.items() if cell["dynamics"] == "shared"}
    passed = bool(needed) and needed <= judged and all(c["met"] is not False for c in checks)
    return {
        "cells": cells,
        "rows": rows,
        "derived": derived,
        "checks": checks,
        "leak": dict(sorted(leak.items(), key=lambda kv: list(cells).index(kv[0][0]))),
        "passed": passed,
        "far_above_chance": FAR_ABOVE_CHANCE,
        "alpha": ALPHA,
        "chance_family": family,
    }


def _check(
    cohort: str, source: str, model: str, expected: str, e: Mapping[str, Any]
) -> dict[str, Any]:
    # "at chance" is judged once the whole family of such checks is known (audit_report)
    met = None if expected == "chance" else _far_above(e)
    return {
        "cohort": cohort,
        "source": source,
        "model": model,
        "expected": expected,
        "top1": e["top1"],
        "top1_ci": list(e["ci"]),
        "chance": e["chance"],
        "p_chance": e.get("p_chance"),
        "met": met,
    }


__all__ = [
    "ALPHA",
    "APPEARANCE_MODELS",
    "DEFAULT_COHORTS",
    "EXPERIMENT_PREFIX",
    "FAR_ABOVE_CHANCE",
    "MAIN_COHORT",
    "AuditError",
    "audit_cohorts",
    "audit_experiments",
    "audit_report",
    "derived_seed",
    "experiment_name",
]
