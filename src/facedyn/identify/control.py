"""The disentanglement control: is what the pipeline identifies the speakers' dynamics?

A control cohort (``config/controls.yaml``: ``dataset.synthetic.signature_strength: 0``)
gives every speaker the same dynamics distribution while keeping their own head shape,
portrait and instability. Whatever identifies its speakers from expression and jaw features
then comes from somewhere else (shape or appearance leaking through the fit, detector errors
that depend on the face): the pipeline's evidence that it measures dynamics is that, on this
cohort, every encoder and every baseline on expression + jaw is at chance (top-1 CI includes
chance), on fitted features and on the truth alike, while the shape-only baseline, which
sees the head shape the cohort kept, stays far above chance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Models that see the head shape, not the dynamics: they must stay far above chance.
SHAPE_MODELS = ("shape_only",)
#: "Far above chance": the lower end of the top-1 CI at least this many times chance.
FAR_ABOVE_CHANCE = 5.0


def is_control(dataset: Mapping[str, Any]) -> bool:
    """Whether a ``dataset`` config describes a control cohort (no dynamic identity)."""
    synthetic = dataset.get("synthetic") or {}
    return (
        dataset.get("kind") == "synthetic"
        and float(synthetic.get("signature_strength", 1.0)) == 0.0
    )


def control_verdict(metrics: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every model of every experiment against what the control expects of it.

    Args:
        metrics: the experiments' ``metrics.json`` documents.

    Returns:
        ``rows`` (one per experiment and model: ``experiment, source, model, top1, top1_ci,
        chance, expected`` (``"chance"`` or ``"far above chance"``), ``met``), ``passed``
        (every row met, and at least one dynamics model and one shape model were judged),
        ``far_above_chance`` (:data:`FAR_ABOVE_CHANCE`).
    """
    rows = []
    for m in metrics:
        chance = m.get("chance")
        for name, entry in (m.get("models") or {}).items():
            ci = entry.get("top1_ci")
            if chance is None or not ci or None in ci:
                continue
            lo, hi = float(ci[0]), float(ci[1])
            shape = name in SHAPE_MODELS
            met = lo >= FAR_ABOVE_CHANCE * chance if shape else lo <= chance <= hi
            rows.append(
                {
                    "experiment": m.get("experiment"),
                    "source": m.get("source"),
                    "model": name,
                    "top1": entry.get("top1"),
                    "top1_ci": [lo, hi],
                    "chance": chance,
                    "expected": "far above chance" if shape else "chance",
                    "met": met,
                }
            )
    judged_dynamics = any(r["expected"] == "chance" and r["model"] != "chance" for r in rows)
    judged_shape = any(r["expected"] != "chance" for r in rows)
    return {
        "rows": rows,
        "far_above_chance": FAR_ABOVE_CHANCE,
        "passed": bool(rows) and judged_dynamics and judged_shape and all(r["met"] for r in rows),
    }


__all__ = ["FAR_ABOVE_CHANCE", "SHAPE_MODELS", "control_verdict", "is_control"]
