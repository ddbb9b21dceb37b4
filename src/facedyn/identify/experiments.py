"""Identification experiments: ``identify`` defaults merged with one experiment's overrides.

``config["identify"]`` holds defaults (protocol, windows, features, ...) and an
``experiments`` mapping from experiment name (a value of the ``{experiment}`` wildcard) to an
object overriding any of those keys::

    identify:
      window_s: 8
      experiments:
        main: {}
        window_4s: {window_s: 4}
        within_session: false   # configured elsewhere, not run

:func:`experiment_settings` merges the two and validates the result into a frozen
:class:`ExperimentSettings`. The merge is generic: a new setting is a new dataclass field
(plus its schema entry); an override key that is not a field is an error naming the key and
the experiment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from facedyn.dynamics.features import FEATURE_SETS
from facedyn.identify import registry
from facedyn.identify.settings import ENCODERS, EncoderSettings, TrainSettings
from facedyn.names import SAFE_ID, is_safe_id

PROTOCOLS = ("cross_session", "within_session")
SOURCES = ("fitted", "truth")
#: Models an experiment may compare with its encoder on the same folds and metrics
#: (:data:`facedyn.identify.registry.BASELINES`).
BASELINES = tuple(registry.BASELINES)
#: The baselines that are encoders, trained per fold like the experiment's own (rule
#: ``train_baseline_encoder``); the others are scored by
#: :data:`facedyn.identify.registry.BASELINE_SCORERS`.
ENCODER_BASELINES = registry.ENCODER_BASELINES
#: Nested settings merged key by key (an experiment overriding one key keeps the others).
NESTED = ("model", "train")


class ExperimentError(ValueError):
    """An experiment that does not exist or has an unknown or invalid setting."""


@dataclass(frozen=True)
class ExperimentSettings:
    """Everything one identification experiment needs to build its windows and folds."""

    name: str
    protocol: str = "cross_session"
    n_folds: int = 3
    window_s: float = 8.0
    stride_s: float = 2.0
    features: str = "expr_jaw"
    velocity: bool = False
    center: bool = False
    n_expr: int = 50
    train_fraction: float = 0.8
    min_windows: int = 2
    source: str = "fitted"
    encoder: str = "conformer"
    baselines: tuple[str, ...] = ("stats_lr", "shape_only", "chance")
    data_fraction: float = 1.0
    model: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    train: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    stats_c: float = 1.0
    max_per_speaker: int | None = None
    shape_n: int = 20
    train_seed: int | None = None
    cohort: str = "main"

    def __post_init__(self) -> None:
        where = f"identify.experiments.{self.name}"
        checks = [
            (self.protocol in PROTOCOLS, f"protocol must be one of {PROTOCOLS}"),
            (self.features in FEATURE_SETS, f"features must be one of {FEATURE_SETS}"),
            (
                isinstance(self.n_folds, int) and self.n_folds >= 1,
                "n_folds must be an integer >= 1",
            ),
            (_number(self.window_s) and self.window_s > 0, "window_s must be > 0"),
            (_number(self.stride_s) and self.stride_s > 0, "stride_s must be > 0"),
            (isinstance(self.velocity, bool), "velocity must be true or false"),
            (isinstance(self.center, bool), "center must be true or false"),
            (isinstance(self.n_expr, int) and self.n_expr >= 1, "n_expr must be an integer >= 1"),
            (
                _number(self.train_fraction) and 0 < self.train_fraction < 1,
                "train_fraction must be in (0, 1)",
            ),
            (
                isinstance(self.min_windows, int) and self.min_windows >= 1,
                "min_windows must be an integer >= 1",
            ),
            (self.source in SOURCES, f"source must be one of {SOURCES}"),
            (self.encoder in ENCODERS, f"encoder must be one of {ENCODERS}"),
            (
                all(b in BASELINES for b in self.baselines),
                f"baselines must be a list drawn from {BASELINES}",
            ),
            (
                _number(self.data_fraction) and 0 < self.data_fraction <= 1,
                "data_fraction must be in (0, 1]",
            ),
            (_number(self.stats_c) and self.stats_c > 0, "stats_c must be > 0"),
            (
                self.max_per_speaker is None
                or (isinstance(self.max_per_speaker, int) and self.max_per_speaker >= 1),
                "max_per_speaker must be null or an integer >= 1",
            ),
            (
                isinstance(self.shape_n, int) and self.shape_n >= 1,
                "shape_n must be an integer >= 1",
            ),
            (
                self.train_seed is None
                or (
                    isinstance(self.train_seed, int)
                    and not isinstance(self.train_seed, bool)
                    and self.train_seed >= 0
                ),
                "train_seed must be null or an integer >= 0",
            ),
            (
                isinstance(self.cohort, str) and is_safe_id(self.cohort),
                f"cohort must be a cohort name matching {SAFE_ID}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ExperimentError(f"{where}: {message}")
        object.__setattr__(self, "baselines", tuple(self.baselines))
        # Validate the nested settings now, so a typo fails while the DAG is built.
        try:
            self.encoder_settings()
            self.train_settings()
        except ValueError as err:
            raise ExperimentError(f"{where}: {err}") from None

    def encoder_settings(self, encoder: str | None = None) -> EncoderSettings:
        """The experiment's encoder settings, or a baseline encoder's (``lstm``/``tcn``: the
        same sizes, another kind)."""
        return EncoderSettings.from_mapping({**self.model, "encoder": encoder or self.encoder})

    def train_settings(self) -> TrainSettings:
        """The training loop's settings."""
        return TrainSettings.from_mapping(dict(self.train))

    @property
    def guard_s(self) -> float:
        """Gap kept between the training and test part of a session (within_session) and
        before a validation part: one window."""
        return float(self.window_s)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(baselines=list(self.baselines), model=dict(self.model), train=dict(self.train))
        return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def setting_names() -> list[str]:
    """Keys an experiment may set (the dataclass fields except ``name``)."""
    return [f.name for f in dataclasses.fields(ExperimentSettings) if f.name != "name"]


def experiment_names(identify: Mapping[str, Any]) -> list[str]:
    """Configured experiment names, in config order, without those set to ``false``.

    Config files merge and cannot delete keys, so an override file turns an inherited
    experiment off with ``name: false`` (``config/controls.yaml`` runs only two).
    """
    return [
        name for name, value in (identify.get("experiments") or {}).items() if value is not False
    ]


def experiment_settings(identify: Mapping[str, Any], name: str) -> ExperimentSettings:
    """Defaults of ``identify`` merged with ``identify.experiments[name]``, validated."""
    experiments = identify.get("experiments") or {}
    if name not in experiments:
        raise ExperimentError(
            f"no experiment {name!r} under identify.experiments (configured: {sorted(experiments)})"
        )
    if not is_safe_id(name):
        raise ExperimentError(f"experiment name {name!r} must match {SAFE_ID}")
    allowed = set(setting_names())
    overrides = experiments[name] or {}
    if not isinstance(overrides, Mapping):
        raise ExperimentError(f"identify.experiments.{name} must be a mapping of settings")
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ExperimentError(
            f"identify.experiments.{name}: unknown key(s) {unknown}; "
            f"an experiment may set {sorted(allowed)}"
        )
    merged = {k: v for k, v in identify.items() if k in allowed}
    for key, value in overrides.items():
        if key in NESTED:
            if not isinstance(value, Mapping):
                raise ExperimentError(f"identify.experiments.{name}.{key} must be a mapping")
            merged[key] = {**(merged.get(key) or {}), **value}
        else:
            merged[key] = value
    return ExperimentSettings(name=name, **merged)
