"""The baseline registry (facedyn.identify.registry): every baseline is an encoder or has a
scorer, and every list of baselines (experiment settings, the workflow's encoder rule, the
config schema, evaluation, the leak statistic) is the registry's."""

from pathlib import Path

import yaml

from facedyn.identify import experiments, registry, stage

ROOT = Path(__file__).resolve().parents[1]


def test_every_baseline_is_an_encoder_or_has_a_scorer():
    for name, baseline in registry.BASELINES.items():
        assert (name in registry.ENCODER_BASELINES) == (baseline.scorer is None), name
        assert (name in registry.BASELINE_SCORERS) == (baseline.scorer is not None), name
    assert list(registry.BASELINES) == [*registry.ENCODER_BASELINES, *registry.BASELINE_SCORERS]
    assert set(registry.ENCODER_BASELINES) <= set(experiments.ENCODERS)


def test_the_other_lists_of_baselines_are_the_registrys():
    assert tuple(registry.BASELINES) == experiments.BASELINES
    assert experiments.ENCODER_BASELINES is registry.ENCODER_BASELINES
    assert stage.BASELINE_SCORERS is registry.BASELINE_SCORERS
    assert stage.NOT_DYNAMICS is registry.NOT_DYNAMICS
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    field = schema["properties"]["identify"]["properties"]["baselines"]
    assert field["items"]["enum"] == list(registry.BASELINES)


def test_only_dynamics_models_are_judged_by_the_leak_statistic():
    assert registry.NOT_DYNAMICS == ("shape_only", "appearance_only", "chance")
