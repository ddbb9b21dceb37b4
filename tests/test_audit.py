"""The appearance-leak audit: control cohorts, their experiments, the report and its page."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from facedyn.audit import (
    DEFAULT_COHORTS,
    AuditError,
    audit_cohorts,
    audit_experiments,
    audit_report,
    derived_seed,
)
from facedyn.plots.audit import audit_figure
from facedyn.plots.summary import audit_section, summary_markdown

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
AUDIT_DEFAULTS = {
    key: spec["default"] for key, spec in SCHEMA["properties"]["audit"]["properties"].items()
}


def _config(**audit):
    return {
        "dataset": {"kind": "synthetic", "synthetic": {"name": "default", "seed": 0}},
        "identify": {
            "main_experiment": "main",
            "experiments": {"main": {"baselines": ["stats_lr", "shape_only", "chance"]}},
        },
        "audit": {**AUDIT_DEFAULTS, **audit},
    }


def test_control_cohorts_merge_size_and_overrides_with_their_own_folder_and_seed():
    cohorts = audit_cohorts(_config())
    assert list(cohorts) == ["null_dynamics", "swap", "null_swap"]
    null, swap, both = cohorts.values()
    assert null["signature_strength"] == 0 and "portrait" not in null
    # one dynamics distribution: a per-speaker instability would be a dynamic trait
    assert tuple(null["instability"]) == tuple(both["instability"]) == (1.0, 1.0)
    assert "instability" not in swap
    assert swap["portrait"] == swap["head_shape"] == "session"
    assert both["signature_strength"] == 0 and both["head_shape"] == "session"
    for name, c in cohorts.items():
        assert c["n_speakers"] == 16 and c["duration_s"] == 20  # audit.size
        assert c["name"] == f"default-{name}"
        assert c["seed"] == derived_seed(0, name)
    seeds = [c["seed"] for c in cohorts.values()]
    assert len(set(seeds)) == 3 and 0 not in seeds
    # the controls follow the main cohort's seed
    moved = _config()
    moved["dataset"]["synthetic"]["seed"] = 2
    assert [c["seed"] for c in audit_cohorts(moved).values()] != seeds
    # a cohort turned off, and the whole audit off
    assert list(audit_cohorts(_config(cohorts={**AUDIT_DEFAULTS["cohorts"], "swap": False}))) == [
        "null_dynamics",
        "null_swap",
    ]
    off = {name: False for name in AUDIT_DEFAULTS["cohorts"]}
    assert audit_cohorts(_config(cohorts=off)) == {}
    assert audit_experiments(_config(cohorts=off)) == {}


def test_a_config_changes_one_cohort_and_keeps_the_others():
    assert SCHEMA["properties"]["audit"]["properties"]["cohorts"]["default"] == DEFAULT_COHORTS
    assert set(audit_cohorts(_config(cohorts={"swap": False}))) == {"null_dynamics", "null_swap"}
    smaller = audit_cohorts(_config(cohorts={"null_dynamics": {"n_speakers": 8}}))
    assert set(smaller) == set(DEFAULT_COHORTS)
    assert smaller["null_dynamics"]["n_speakers"] == 8
    assert smaller["null_dynamics"]["signature_strength"] == 0  # the default's keys stay
    added = audit_cohorts(_config(cohorts={"null_faces_1": {"signature_strength": 0}}))
    assert set(added) == {*DEFAULT_COHORTS, "null_faces_1"}
    off = {name: False for name in DEFAULT_COHORTS}
    assert audit_cohorts(_config(cohorts=off)) == {}


@pytest.mark.parametrize(
    ("cohorts", "named"),
    [
        ({"bad": {"portrait": "everyone"}}, "audit.cohorts.bad"),
        ({"bad": {"no_such_key": 1}}, "audit.cohorts.bad"),
        ({"main": {}}, "main"),
        ({"a": {"name": "x"}, "b": {"name": "x"}}, "one folder"),
    ],
)
def test_a_cohort_that_cannot_run_names_its_key(cohorts, named):
    with pytest.raises(AuditError, match=named):
        audit_cohorts(_config(cohorts=cohorts))


def test_one_experiment_per_cohort_and_source_with_the_main_settings():
    experiments = audit_experiments(_config())
    assert sorted(experiments) == sorted(
        f"audit_{c}{s}" for c in ("null_dynamics", "swap", "null_swap") for s in ("", "_truth")
    )
    assert experiments["audit_swap"] == {
        "baselines": ["stats_lr", "shape_only", "chance"],
        "cohort": "swap",
        "source": "fitted",
    }
    assert experiments["audit_swap_truth"]["source"] == "truth"
    assert sorted(audit_experiments(_config(sources=["fitted"]))) == [
        "audit_null_dynamics",
        "audit_null_swap",
        "audit_swap",
    ]
    with pytest.raises(AuditError, match=r"audit\.experiment"):
        audit_experiments(_config(experiment="nope"))
    clash = _config()
    clash["identify"]["experiments"]["audit_swap"] = {}
    with pytest.raises(AuditError, match="audit_swap"):
        audit_experiments(clash)


def _metrics(name, cohort, source, models, chance=1 / 16):
    """A metrics.json document; a model's value is (top1, lo, hi) or (top1, lo, hi, p)."""
    return {
        "experiment": name,
        "source": source,
        "chance": chance,
        "settings": {"cohort": cohort, "source": source, "encoder": "conformer"},
        "models": {
            m: {"top1": v[0], "top1_ci": [v[1], v[2]], "top1_p_chance": (v[3:] or (None,))[0]}
            for m, v in models.items()
        },
    }


AT_CHANCE = (0.07, 0.03, 0.11)
LEAKY = (0.20, 0.13, 0.28)
STRONG = (0.60, 0.45, 0.75)


def _run(null_conformer, swap_fitted=(0.5, 0.4, 0.6), swap_truth=STRONG, swap_shape=AT_CHANCE):
    cohorts = audit_cohorts(_config())
    cells = [  # (experiment, cohort, source, conformer's and shape_only's top-1)
        ("audit_null_dynamics", "null_dynamics", "fitted", null_conformer, STRONG),
        ("audit_null_dynamics_truth", "null_dynamics", "truth", AT_CHANCE, STRONG),
        ("audit_swap", "swap", "fitted", swap_fitted, swap_shape),
        ("audit_swap_truth", "swap", "truth", swap_truth, AT_CHANCE),
        ("audit_null_swap", "null_swap", "fitted", AT_CHANCE, AT_CHANCE),
    ]
    return audit_report(
        [
            _metrics("main", "main", "fitted", {"conformer": STRONG, "shape_only": STRONG}, 1 / 32),
            _metrics("truth", "main", "truth", {"conformer": STRONG, "shape_only": STRONG}, 1 / 32),
            *(
                _metrics(name, cohort, source, {"conformer": dyn, "shape_only": shape})
                for name, cohort, source, dyn, shape in cells
            ),
        ],
        cohorts,
        "main",
        "truth",
    )


def test_the_audit_passes_only_with_dynamics_at_chance_where_they_are_shared():
    passed = _run(AT_CHANCE)
    assert passed["passed"]
    assert passed["cells"]["swap"] == {"dynamics": "own", "face": "swapped"}
    assert passed["cells"]["null_swap"] == {"dynamics": "shared", "face": "swapped"}
    derived = passed["derived"]["conformer"]
    assert derived["leak_floor"] == pytest.approx(0.07 * 16)
    assert derived["efficiency"] == pytest.approx(0.5 / 0.6)
    assert derived["main_over_chance"] == pytest.approx(0.6 * 32)
    # a leak on the null control fails it, naming the row
    leaky = _run(LEAKY)
    assert not leaky["passed"]
    [failed] = [c for c in leaky["checks"] if c["met"] is False]
    assert (failed["cohort"], failed["source"], failed["model"]) == (
        "null_dynamics",
        "fitted",
        "conformer",
    )
    # a swap control whose truth carries no identity cannot measure anything
    assert not _run(AT_CHANCE, swap_truth=AT_CHANCE)["passed"]
    # appearance that identifies across swapped faces means the swap did not swap
    assert not _run(AT_CHANCE, swap_shape=STRONG)["passed"]


def test_at_chance_checks_hold_their_family_wise_error_rate_together():
    # one of six at-chance checks with p 0.01: below 0.05 alone, not after Bonferroni
    # over the family; a leak with p 0.001 fails it
    borderline = (0.11, 0.065, 0.16, 0.01)
    report = _run((0.07, 0.03, 0.11, 0.6), swap_shape=borderline)
    family = report["chance_family"]
    assert family == sum(c["expected"] == "chance" for c in report["checks"]) == 6
    assert report["alpha"] == 0.05 and report["passed"]
    [shape] = [
        c
        for c in report["checks"]
        if (c["cohort"], c["model"]) == ("swap", "shape_only") and c["source"] == "fitted"
    ]
    assert shape["met"] is True and shape["p_chance"] == 0.01
    assert not _run((0.2, 0.13, 0.28, 0.001))["passed"]
    # without p-values (older metrics) the 95 % CI decides: that CI excludes chance
    assert not _run(AT_CHANCE, swap_shape=borderline[:3])["passed"]
    page = "\n".join(audit_section(report))
    assert "over all 6 such checks together, Bonferroni" in page


def test_without_a_shared_dynamics_control_the_audit_cannot_pass():
    cohorts = {"swap": audit_cohorts(_config())["swap"]}
    report = audit_report(
        [_metrics("audit_swap_truth", "swap", "truth", {"conformer": STRONG})],
        cohorts,
        "main",
        None,
    )
    assert not report["passed"]


def test_the_summary_puts_the_leak_floor_beside_every_main_number():
    report = _run(LEAKY)
    metrics = [
        _metrics("main", "main", "fitted", {"conformer": STRONG, "shape_only": STRONG}, 1 / 32)
    ]
    page = summary_markdown("default", metrics, main="main", audit=report)
    assert (
        "| model | top-1 [95 % CI] | top-5 | session top-1 | EER | minDCF | leak floor (null) |"
        in page
    )
    assert "| Conformer | 60.0 % [45.0 %, 75.0 %] | n/a | n/a | n/a | n/a | 3.2x | 0.83 |" in page
    assert "## Appearance-leak audit" in page and "**Audit failed**" in page
    assert "- not met: null fitted, Conformer 20.0 % [13.0 %, 28.0 %]" in page
    assert "**Audit passed**" in summary_markdown("d", metrics, main="main", audit=_run(AT_CHANCE))
    plain = summary_markdown("default", metrics, main="main")
    assert "Appearance-leak audit" not in plain and "leak floor" not in plain


def test_the_figure_has_a_panel_per_cohort_and_states_the_verdict():
    fig = audit_figure(_run(LEAKY), "default")
    panels = [ax for ax in fig.axes if ax.get_title(loc="left")]
    assert [ax.get_title(loc="left").split(" (")[0] for ax in panels] == [
        "main",
        "null",
        "swap",
        "null + swap",
    ]
    assert "audit failed" in fig._suptitle.get_text()
    # two bars (fitted, truth) per model where both ran; null + swap ran fitted only
    assert [len(ax.patches) for ax in panels] == [4, 4, 4, 2]
    assert any(ln.get_linestyle() == "--" for ln in panels[1].get_lines())  # chance


def test_the_leak_statistic_joins_the_audit_and_the_main_block():
    stat = {"spearman_rho": 0.42, "p_value": 0.004, "confused_share": 0.3}
    metrics = _metrics("main", "main", "fitted", {"conformer": STRONG}, 1 / 32)
    null = _metrics("audit_null_dynamics", "null_dynamics", "fitted", {"conformer": LEAKY})
    metrics["appearance_leak"] = null["appearance_leak"] = {"conformer": stat}
    report = audit_report([metrics, null], audit_cohorts(_config()), "main", "truth")
    assert list(report["leak"]) == [("main", "fitted"), ("null_dynamics", "fitted")]
    page = summary_markdown("d", [metrics], main="main", audit=report)
    assert "Appearance leak without a control" in page and "Conformer rho 0.42 (p 0.004)" in page
    assert "| null | fitted | 0.42 | 0.004 | 30.0 % (n/a) |" in page


def test_the_audit_table_gives_the_main_chance_then_the_controls():
    table = "\n".join(audit_section(_run(null_conformer=AT_CHANCE)))
    conformer = next(line for line in table.splitlines() if line.startswith("| Conformer |"))
    assert conformer.endswith("| 3.1 % / 6.2 % |")  # 32 speakers in main, 16 per control
