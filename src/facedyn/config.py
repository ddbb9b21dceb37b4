"""The checks of a run configuration that its JSON schema cannot make.

``workflow/schemas/config.schema.yaml`` checks types, ranges and key names (the Snakefile
validates the merged config with it and fills in its defaults). What the schema cannot
check, this module does on the validated config: paths that must exist, files that must be
readable as a FLAME model or a manifest table, the landmark backend's install, the audit's
control cohorts and every identification experiment. The workflow calls
:func:`check_config` while it builds the DAG, before any job, so a config that cannot run
stops there; every failure is a :class:`ConfigError` whose message names the config key to
fix.

The workflow's input functions use :func:`real_head_model_files`,
:func:`dense_embedding_file` and :func:`check_dataset_source` for the files they declare,
so a path is checked by the same code wherever it is read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facedyn.audit import AuditError, audit_cohorts, audit_experiments
from facedyn.identify.experiments import (
    ExperimentError,
    ExperimentSettings,
    experiment_names,
    experiment_settings,
)
from facedyn.privacy import frames_allowed

#: ``flame.model`` and ``flame.dense_embedding`` value of the generated stand-in head.
SYNTHETIC = "synthetic"

_LOG = logging.getLogger(__name__)


class ConfigError(Exception):
    """A configuration value that the schema cannot check (e.g. a missing file); the
    message names the config key to fix."""


@dataclass(frozen=True)
class CheckedConfig:
    """What :func:`check_config` resolved from a config that can run."""

    #: The audit's control cohorts (``audit.cohorts`` merged, resolved):
    #: :func:`facedyn.audit.audit_cohorts`.
    audit_cohorts: dict[str, dict[str, Any]]
    #: The identification experiments the audit adds: :func:`facedyn.audit.audit_experiments`.
    audit_experiments: dict[str, dict[str, Any]]
    #: Every configured experiment and every audit experiment, merged with the ``identify``
    #: defaults and validated.
    all_experiments: dict[str, ExperimentSettings]
    #: The experiments the run makes: :attr:`all_experiments` less the main cohort's
    #: ``source: truth`` experiments when the dataset is not the synthetic cohort.
    experiments: dict[str, ExperimentSettings]


# --- files ---------------------------------------------------------------------------------------


def schema_defaults(schema: str | os.PathLike[str], *section: str) -> dict[str, Any]:
    """The schema's defaults of one config section: ``{key: default}`` for every key of
    ``section`` (e.g. ``"fit"`` or ``"dataset", "synthetic"``) that declares one, as the
    Snakefile's validation fills them in. For scripts that call a stage outside the workflow.

    Raises:
        KeyError: ``section`` is not an object of the schema.
    """
    import yaml

    node = yaml.safe_load(Path(schema).read_text())
    for key in section:
        node = node["properties"][key]
    return {k: v["default"] for k, v in node["properties"].items() if "default" in v}


def existing_file(key: str, value: str) -> str:
    """``value`` of config key ``key``, which must be a file.

    Raises:
        ConfigError: ``value`` is not a file.
    """
    if not Path(value).is_file():
        raise ConfigError(
            f"config key `{key}` points to {value!r}, which is not a file. "
            "Fix the path in your config override file (see config/README.md)."
        )
    return value


def is_synthetic_head(config: Mapping[str, Any]) -> bool:
    """Whether the run uses the generated stand-in head (``flame.model: synthetic``)."""
    return config["flame"]["model"] == SYNTHETIC


def dense_embedding_file(config: Mapping[str, Any]) -> str | None:
    """``flame.dense_embedding``, checked: ``None`` (no dense points), :data:`SYNTHETIC` (the
    embedding measured on the synthetic head) or the user's existing file.

    Raises:
        ConfigError: :data:`SYNTHETIC` with a real FLAME model, or a path that is not a file.
    """
    dense = config["flame"]["dense_embedding"]
    if dense is None:
        return None
    if dense == SYNTHETIC:
        if not is_synthetic_head(config):
            raise ConfigError(
                "config key `flame.dense_embedding`: `synthetic` measures the embedding on the "
                "synthetic head; with a real FLAME model point it to metrical-tracker's "
                "mediapipe_landmark_embedding.npz"
            )
        return dense
    return existing_file("flame.dense_embedding", dense)


def real_head_model_files(config: Mapping[str, Any]) -> dict[str, str]:
    """The user's licensed FLAME files, checked to exist: ``model`` (``flame.model``) and
    ``embedding`` (``flame.landmark_embedding``). Only for a real head model
    (not :func:`is_synthetic_head`).

    Raises:
        ConfigError: no landmark embedding, or a path that is not a file.
    """
    embedding = config["flame"]["landmark_embedding"]
    if embedding is None:
        raise ConfigError(
            "config key `flame.landmark_embedding` is required with a real FLAME model: "
            "point it to DECA's landmark_embedding.npy"
        )
    return {
        "model": existing_file("flame.model", config["flame"]["model"]),
        "embedding": existing_file("flame.landmark_embedding", embedding),
    }


def check_dataset_source(config: Mapping[str, Any]) -> None:
    """The dataset read in place exists: the CANDOR root folder (``dataset.kind: candor``)
    or the table file (``manifest``); the synthetic cohort is generated by the run.

    Raises:
        ConfigError: the root is not a folder, or the table is not a file.
    """
    kind = config["dataset"]["kind"]
    if kind == "synthetic":
        return
    if kind == "candor":
        root = Path(config["dataset"]["root"])
        if not root.is_dir():
            raise ConfigError(
                f"config key `dataset.root` points to {str(root)!r}, which is not a folder. "
                "Set it to the CANDOR corpus root (the folder of conversation folders)."
            )
        return
    existing_file("dataset.table", config["dataset"]["table"])


def frames_in_figures_allowed(config: Mapping[str, Any]) -> bool:
    """Figures may show video frames (:func:`facedyn.privacy.frames_allowed`: the synthetic
    cohort, or ``privacy.frames_in_figures: true``)."""
    return frames_allowed(config["dataset"]["kind"], config["privacy"]["frames_in_figures"])


def check_frames_in_figures(config: Mapping[str, Any]) -> None:
    """The landmark-frame figure, which draws a video frame, is allowed.

    Raises:
        ConfigError: not :func:`frames_in_figures_allowed`.
    """
    if not frames_in_figures_allowed(config):
        raise ConfigError(
            "results/figures/landmark_frame.png draws a video frame: allowed for "
            "dataset.kind: synthetic, else only with `privacy.frames_in_figures: true`"
        )


# --- the checks of check_config, in its order ----------------------------------------------------


def check_fit_import(config: Mapping[str, Any]) -> None:
    """With ``fit.backend: import``, ``fit.import.dir`` is a folder.

    Raises:
        ConfigError: no folder.
    """
    if config["fit"]["backend"] == "import":
        folder = config["fit"]["import"]["dir"]
        if folder is None or not Path(folder).is_dir():
            raise ConfigError(
                "config key `fit.import.dir` must name a folder of <session>/<speaker>.npz "
                f"files when `fit.backend` is import (got {folder!r})"
            )


def check_dataset_table(config: Mapping[str, Any]) -> None:
    """A manifest table (``dataset.kind: manifest``) without whole-dataset problems:
    readable, with the required columns, safe and unique (session_id, speaker_id) ids
    (:func:`facedyn.datasets.table.check_table`). Videos are not probed (that is the
    manifest job's work).

    Raises:
        ConfigError: no ``dataset.table``, or a table with such a problem.
    """
    if config["dataset"]["kind"] != "manifest":
        return
    table = config["dataset"]["table"]
    if not table:
        raise ConfigError(
            "config key `dataset.table` is required with `dataset.kind: manifest`: a "
            "CSV/Parquet file with columns speaker_id, session_id, video"
        )
    from facedyn.datasets.records import ManifestError
    from facedyn.datasets.table import check_table

    try:
        check_table(table)
    except ManifestError as err:
        raise ConfigError(f"config key `dataset.table`: {err}") from None


def check_head_model_files(config: Mapping[str, Any]) -> None:
    """A user's FLAME model and landmark embedding that can be used: present
    (:func:`real_head_model_files`, with :func:`dense_embedding_file`), with the keys and
    shapes FLAME has and enough components for ``flame.n_shape`` / ``flame.n_expr``
    (:func:`facedyn.flame.head_model.check_head_model`, which reads the files: a second or two).
    The generated stand-in head needs no check.

    Raises:
        ConfigError: a missing file or a file that cannot be used, naming its key.
    """
    if is_synthetic_head(config):
        return
    files = real_head_model_files(config)
    dense_embedding_file(config)
    from facedyn.flame.head_model import check_head_model
    from facedyn.flame.io import FlameModelError

    try:
        check_head_model(
            files["model"],
            files["embedding"],
            n_shape=config["flame"]["n_shape"],
            n_expr=config["flame"]["n_expr"],
            yaw_sign=config["flame"]["yaw_sign"],
        )
    except FlameModelError as err:
        raise ConfigError(str(err)) from None


def check_landmark_backend(config: Mapping[str, Any]) -> None:
    """The landmark backend can run: ``flame.dense_embedding`` only with MediaPipe's dense
    points, MediaPipe installed, the insightface model pack present (unless
    ``landmarks.insightface.download``). Cheap: nothing is imported or loaded.

    Raises:
        ConfigError: saying what to set or install.
    """
    settings = config["landmarks"]
    if config["flame"]["dense_embedding"] is not None and settings["backend"] != "mediapipe":
        raise ConfigError(
            "config key `flame.dense_embedding` fits MediaPipe's dense points: set "
            "`landmarks.backend: mediapipe` too, or `flame.dense_embedding: null`"
        )
    if settings["backend"] == "mediapipe":
        from facedyn.face.mediapipe_backend import check_available

        try:
            check_available()
        except ImportError as err:
            raise ConfigError(str(err)) from None
    if settings["backend"] == "insightface" and not settings["insightface"]["download"]:
        from facedyn.face.insightface_backend import check_model_pack

        try:
            check_model_pack(settings["insightface"]["model_pack"], settings["insightface"]["root"])
        except FileNotFoundError as err:
            raise ConfigError(str(err)) from None


def check_audit(
    config: Mapping[str, Any],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The audit's control cohorts (``audit.cohorts``, resolved) and the identification
    experiments it adds.

    Raises:
        ConfigError: a cohort that cannot be generated, naming it.
    """
    try:
        return audit_cohorts(config), audit_experiments(config)
    except AuditError as err:
        raise ConfigError(str(err)) from None


def check_experiments(
    config: Mapping[str, Any], audit: Mapping[str, Mapping[str, Any]]
) -> dict[str, ExperimentSettings]:
    """Every ``identify.experiments`` entry and every ``audit`` experiment, merged with the
    ``identify`` defaults and validated (:func:`facedyn.identify.experiments.experiment_settings`).

    Raises:
        ConfigError: an experiment with an unknown or invalid setting or name, naming it.
    """
    identify = {
        **config["identify"],
        "experiments": {**config["identify"]["experiments"], **audit},
    }
    try:
        return {name: experiment_settings(identify, name) for name in experiment_names(identify)}
    except ExperimentError as err:
        raise ConfigError(str(err)) from None


def run_experiments(
    config: Mapping[str, Any],
    experiments: Mapping[str, ExperimentSettings],
    log: Callable[[str], object] = _LOG.info,
) -> dict[str, ExperimentSettings]:
    """The experiments a run makes: without the synthetic cohort there is no truth, so the
    main cohort's ``source: truth`` experiments are left out, and ``log`` says which (config
    files merge and cannot delete keys, so a CANDOR override cannot remove them)."""
    if config["dataset"]["kind"] == "synthetic":
        return dict(experiments)
    dropped = sorted(
        n for n, s in experiments.items() if s.source == "truth" and s.cohort == "main"
    )
    if dropped:
        log(
            f"identify: {dropped} read the synthetic cohort's truth; not run for "
            f"dataset.kind: {config['dataset']['kind']}"
        )
    return {n: s for n, s in experiments.items() if s.source != "truth" or s.cohort != "main"}


def check_identify_roles(
    config: Mapping[str, Any], experiments: Mapping[str, ExperimentSettings]
) -> None:
    """``identify.main_experiment`` and ``identify.ceiling_experiment`` name experiments of
    ``experiments`` (or are null); the ceiling reads the truth.

    Raises:
        ConfigError: naming the key.
    """
    for key in ("main_experiment", "ceiling_experiment"):
        name = config["identify"].get(key)
        if name is not None and name not in experiments:
            raise ConfigError(
                f"identify.{key}: {name!r} is not under identify.experiments "
                f"({sorted(experiments)}); name one of them or set it to null"
            )
    ceiling = config["identify"].get("ceiling_experiment")
    if ceiling is not None and experiments[ceiling].source != "truth":
        raise ConfigError(f"identify.ceiling_experiment: {ceiling!r} must have source: truth")


def check_config(
    config: Mapping[str, Any],
    *,
    read_files: bool = True,
    log: Callable[[str], object] = _LOG.info,
) -> CheckedConfig:
    """Check a schema-validated config (defaults filled in) for what the schema cannot, and
    resolve the audit and the experiments.

    In this order: ``fit.import.dir``, the manifest table and the user's head model (these
    two read files, only with ``read_files``: the main Snakemake process reads them, cluster
    jobs that re-parse the workflow need not), the landmark backend, the audit, every
    experiment, then the main and ceiling experiments. ``log`` gets the note on experiments
    left out (:func:`run_experiments`).

    Raises:
        ConfigError: the first check that fails; the message names the key to fix.
    """
    check_fit_import(config)
    if read_files:
        check_dataset_table(config)
        check_head_model_files(config)
    check_landmark_backend(config)
    cohorts, audit = check_audit(config)
    all_experiments = check_experiments(config, audit)
    experiments = run_experiments(config, all_experiments, log)
    check_identify_roles(config, all_experiments)
    return CheckedConfig(
        audit_cohorts=cohorts,
        audit_experiments=audit,
        all_experiments=all_experiments,
        experiments=experiments,
    )
