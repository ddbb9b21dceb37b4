"""Shared by all rules, in this order: pre-flight checks (run while the DAG is built, before
any job), then the input functions. Nothing here may be slow: the Snakefile is re-parsed by
every cluster job."""

import functools
import os
import re
from pathlib import Path

import pandas as pd
from snakemake.logging import logger

from facedyn.audit import MAIN_COHORT, AuditError, audit_cohorts, audit_experiments
from facedyn.identify.experiments import (
    ENCODER_BASELINES,
    ExperimentError,
    experiment_names,
    experiment_settings,
)
from facedyn.synthetic import layout  # the synthetic cohort's files
from facedyn.gpu import gpu_slots  # resources: gpu=0/1 (docs/cluster.md)
from facedyn.names import IDENTIFICATION_FIGURES, SAFE_ID
from facedyn.privacy import frames_allowed
from facedyn.runtime import local_core_limit  # the core budget of a local run
from facedyn.runtime import sorted_config  # params independent of config key order

ENV = "../../envs/facedyn.yaml"


wildcard_constraints:
    session=SAFE_ID,
    speaker=SAFE_ID,


class ConfigError(Exception):
    """A configuration value that the schema cannot check (e.g. a missing file)."""


# --- configuration helpers (the checks and the input functions use them) -------------------------


def _existing_file(key, value):
    if not Path(value).is_file():
        raise ConfigError(
            f"config key `{key}` points to {value!r}, which is not a file. "
            "Fix the path in your config override file (see config/README.md)."
        )
    return value


def flame_is_synthetic():
    return config["flame"]["model"] == "synthetic"


def dense_embedding_input():
    """The dense embedding's file, or nothing (`flame.dense_embedding`)."""
    dense = config["flame"]["dense_embedding"]
    if dense is None:
        return {}
    if dense == "synthetic":
        if not flame_is_synthetic():
            raise ConfigError(
                "config key `flame.dense_embedding`: `synthetic` measures the embedding on the "
                "synthetic head; with a real FLAME model point it to metrical-tracker's "
                "mediapipe_landmark_embedding.npz"
            )
        return {"dense": rules.synthetic_dense_embedding.output[0]}
    return {"dense": _existing_file("flame.dense_embedding", dense)}


def flame_model_inputs(wildcards):
    """The head model files: the generated stand-in, or the user's licensed FLAME."""
    if flame_is_synthetic():
        return {
            "model": rules.synthetic_flame.output.model,
            "embedding": rules.synthetic_flame.output.embedding,
            **dense_embedding_input(),
        }
    embedding = config["flame"]["landmark_embedding"]
    if embedding is None:
        raise ConfigError(
            "config key `flame.landmark_embedding` is required with a real FLAME model: "
            "point it to DECA's landmark_embedding.npy"
        )
    return {
        "model": _existing_file("flame.model", config["flame"]["model"]),
        "embedding": _existing_file("flame.landmark_embedding", embedding),
        **dense_embedding_input(),
    }


def synthetic_cohort_dir(cohort="main"):
    """The folder of a generated cohort: the main dataset's (synthetic) or a control's."""
    if cohort == "main":
        return f"resources/synthetic/{config['dataset']['synthetic']['name']}"
    return f"resources/synthetic/{AUDIT_COHORTS[cohort]['name']}"


def cohort_synthetic_settings(wildcards):
    """The generator settings of the cohort folder `{cohort}` (the synthesize rule's params)."""
    for name, settings in AUDIT_COHORTS.items():
        if settings["name"] == wildcards.cohort:
            return sorted_config(settings)
    return sorted_config(config["dataset"]["synthetic"])


# --- pre-flight checks: a config that cannot run stops here, naming the key ----------------------


def check_fit_import():
    if config["fit"]["backend"] == "import":
        folder = config["fit"]["import"]["dir"]
        if folder is None or not Path(folder).is_dir():
            raise ConfigError(
                "config key `fit.import.dir` must name a folder of <session>/<speaker>.npz "
                f"files when `fit.backend` is import (got {folder!r})"
            )


def check_dataset_table():
    """A manifest table with whole-dataset problems (unreadable, missing columns, unsafe
    or repeated (session_id, speaker_id) ids) stops the run here, before any job. Videos
    are not probed (that is the manifest job's work). Main process only: cluster jobs
    re-parse this file and need not read the table again."""
    if config["dataset"]["kind"] != "manifest" or not workflow.is_main_process:
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


def check_head_model_files():
    """A user's FLAME model or landmark embedding that cannot be used (missing key, wrong
    shape, too few components for flame.n_shape / flame.n_expr) stops the run here, before
    any job, naming the key to fix. Main process only (it reads the files, a second or
    two); the generated stand-in head needs no check."""
    if flame_is_synthetic() or not workflow.is_main_process:
        return
    files = flame_model_inputs(None)  # missing paths: ConfigError naming the key
    from facedyn.flame.io import FlameModelError
    from facedyn.flame.summary import check_head_model

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


def check_landmark_backend():
    """A missing insightface model pack or MediaPipe install fails here, before any job,
    saying what to do."""
    settings = config["landmarks"]
    if (
        config["flame"]["dense_embedding"] is not None
        and settings["backend"] != "mediapipe"
    ):
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
            check_model_pack(
                settings["insightface"]["model_pack"], settings["insightface"]["root"]
            )
        except FileNotFoundError as err:
            raise ConfigError(str(err)) from None


def check_audit():
    """The audit's control cohorts (`audit.cohorts`, resolved) and the identification
    experiments it adds; a cohort that cannot be generated fails here, naming it."""
    try:
        return audit_cohorts(config), audit_experiments(config)
    except AuditError as err:
        raise ConfigError(str(err)) from None


def check_experiments():
    """Every `identify.experiments` entry, and every audit experiment, merged with the
    `identify` defaults and validated while the DAG is built: a typo in an experiment fails
    before any job, naming it."""
    identify = {
        **config["identify"],
        "experiments": {**config["identify"]["experiments"], **AUDIT_EXPERIMENTS},
    }
    try:
        return {
            name: experiment_settings(identify, name)
            for name in experiment_names(identify)
        }
    except ExperimentError as err:
        raise ConfigError(str(err)) from None


def _drop_truth_experiments(experiments):
    """Without the synthetic cohort there is no truth: its ceiling experiments are left out
    (config files merge and cannot delete keys, so a CANDOR override cannot remove them).
    """
    if config["dataset"]["kind"] == "synthetic":
        return experiments
    dropped = sorted(
        n for n, s in experiments.items() if s.source == "truth" and s.cohort == "main"
    )
    if dropped:
        logger.info(
            f"identify: {dropped} read the synthetic cohort's truth; not run for "
            f"dataset.kind: {config['dataset']['kind']}"
        )
    return {
        n: s
        for n, s in experiments.items()
        if s.source != "truth" or s.cohort != "main"
    }


def _check_identify_roles():
    """The named main and ceiling experiments must exist; the ceiling must read the truth."""
    for key in ("main_experiment", "ceiling_experiment"):
        name = config["identify"].get(key)
        if name is not None and name not in ALL_EXPERIMENTS:
            raise ConfigError(
                f"identify.{key}: {name!r} is not under identify.experiments "
                f"({sorted(ALL_EXPERIMENTS)}); name one of them or set it to null"
            )
    ceiling = config["identify"].get("ceiling_experiment")
    if ceiling is not None and ALL_EXPERIMENTS[ceiling].source != "truth":
        raise ConfigError(
            f"identify.ceiling_experiment: {ceiling!r} must have source: truth"
        )


check_fit_import()
check_dataset_table()
check_head_model_files()
check_landmark_backend()
AUDIT_COHORTS, AUDIT_EXPERIMENTS = check_audit()
ALL_EXPERIMENTS = check_experiments()
EXPERIMENTS = _drop_truth_experiments(ALL_EXPERIMENTS)
_check_identify_roles()


def hold_cores_to_cpus():
    """A local run uses at most the CPUs it has: with `--cores 8` on 2 CPUs Snakemake would
    run eight single-thread jobs at once, each slower by the shared caches and memory, and
    the run longer (docs/performance.md). Snakemake has no setting for this, so the core
    budget `--cores` gave (its `_cores` resource, which also caps every rule's threads) is
    lowered here. Cluster runs (`--jobs`, where --cores caps the threads of remote jobs) and
    the jobs they start keep theirs."""
    if not workflow.is_main_process or workflow.resource_settings.nodes is not None:
        return
    requested = workflow.global_resources["_cores"].value
    limit = local_core_limit(requested)
    if limit != requested:
        workflow.global_resources["_cores"] = limit
        logger.info(
            f"facedyn: --cores {requested} held to the {limit} CPU(s) this run may use: "
            "jobs beyond them would only share them."
        )


hold_cores_to_cpus()


wildcard_constraints:
    experiment="|".join(re.escape(name) for name in EXPERIMENTS) or "(?!)",


#: Scheduling priority of a training (higher starts first): by cost per fold.
TRAINING_PRIORITY = {"experiment": 2, "tcn": 1, "lstm": 0}


wildcard_constraints:
    fold=r"\d+",
    encoder="|".join(ENCODER_BASELINES),


# --- input functions -----------------------------------------------------------------------------


def manifest_inputs(wildcards):
    """The synthetic cohort's summary when the pipeline generates its data (else the corpus
    or table is read in place; its paths were checked while parsing), and the summary of
    every control cohort of the audit (`audit_<name>`)."""
    audit = {
        f"audit_{name}": str(layout.summary(synthetic_cohort_dir(name)))
        for name in AUDIT_COHORTS
    }
    kind = config["dataset"]["kind"]
    if kind == "synthetic":
        return {"synthetic": str(layout.summary(synthetic_cohort_dir())), **audit}
    if kind == "candor":
        root = Path(config["dataset"]["root"])
        if not root.is_dir():
            raise ConfigError(
                f"config key `dataset.root` points to {str(root)!r}, which is not a folder. "
                "Set it to the CANDOR corpus root (the folder of conversation folders)."
            )
        return audit
    _existing_file("dataset.table", config["dataset"]["table"])
    return audit


@functools.lru_cache(maxsize=4)
def _read_manifest(path, mtime):
    """The manifest as a dict (session, speaker) -> row; cached per file version, since
    every per-video input function asks for it."""
    df = pd.read_parquet(path)
    return {(r["session_id"], r["speaker_id"]): r for r in df.to_dict(orient="records")}


def manifest_index():
    """(session, speaker) -> manifest row, once the manifest checkpoint has run."""
    path = checkpoints.manifest.get().output[0]
    return _read_manifest(path, os.path.getmtime(path))


def manifest_row(wildcards):
    key = (wildcards.session, wildcards.speaker)
    rows = manifest_index()
    if key not in rows:
        raise ValueError(f"{key[0]}/{key[1]} is not a video of the manifest")
    return rows[key]


def landmarks_inputs(wildcards):
    """The video itself when the manifest says it is readable (so a changed video reruns);
    unreadable or missing ones get an empty table with the reason, not a failed job."""
    row = manifest_row(wildcards)
    inputs = {"manifest": "results/cohort/manifest.parquet"}
    if row["status"] == "ok":
        inputs["video"] = row["video"]
    return inputs


def manifest_keys(cohort=None):
    """(session, speaker) of every manifest video, or of one cohort's."""
    return [
        key
        for key, row in sorted(manifest_index().items())
        if cohort is None or row["cohort"] == cohort
    ]


def all_landmark_tables(wildcards):
    return [f"results/landmarks/{se}/{sp}.parquet" for se, sp in manifest_keys()]


def all_flame_tables(wildcards):
    return [f"results/flame/{se}/{sp}.parquet" for se, sp in manifest_keys()]


def main_landmark_tables(wildcards):
    """The run's own dataset's videos (not the audit's control cohorts)."""
    return [f"results/landmarks/{se}/{sp}.parquet" for se, sp in manifest_keys("main")]


def main_flame_tables(wildcards):
    return [f"results/flame/{se}/{sp}.parquet" for se, sp in manifest_keys("main")]


def experiment_flame_tables(wildcards):
    """The FLAME tables of the cohort an experiment identifies."""
    cohort = EXPERIMENTS[wildcards.experiment].cohort
    return [f"results/flame/{se}/{sp}.parquet" for se, sp in manifest_keys(cohort)]


def experiment_params(wildcards):
    """The merged settings of one experiment (params: a change reruns only that one)."""
    return EXPERIMENTS[wildcards.experiment].to_dict()


def n_folds(name):
    """Folds of an experiment: n_folds for cross_session, one for within_session."""
    settings = EXPERIMENTS[name]
    return settings.n_folds if settings.protocol == "cross_session" else 1


def fold_files(wildcards, filename):
    return [
        f"results/identify/{wildcards.experiment}/fold{k}/{filename}"
        for k in range(n_folds(wildcards.experiment))
    ]


def truth_dir(wildcards):
    """The cohort's per-frame truth for source: truth experiments, else None."""
    settings = EXPERIMENTS[wildcards.experiment]
    if settings.source == "truth":
        return str(layout.frames_dir(synthetic_cohort_dir(settings.cohort)))
    return None


def truth_inputs(wildcards):
    """The synthetic cohort's summary for source: truth experiments (truth/ lies beside)."""
    settings = EXPERIMENTS[wildcards.experiment]
    if settings.source == "truth":
        return {"cohort": str(layout.summary(synthetic_cohort_dir(settings.cohort)))}
    return {}


def evaluate_checkpoints(wildcards):
    """The experiment's encoder and its neural baselines, as ckpt_<name> inputs, and the
    training record beside each (status_<name>: trained, or why not)."""
    base = f"results/identify/{wildcards.experiment}/fold{wildcards.fold}"
    files = {"main": "model"}
    for name in EXPERIMENTS[wildcards.experiment].baselines:
        if name in ENCODER_BASELINES:
            files[name] = name
    inputs = {}
    for name, stem in files.items():
        inputs[f"ckpt_{name}"] = f"{base}/{stem}.pt"
        inputs[f"status_{name}"] = f"{base}/{stem}.json"
    return inputs


def summarize_extras(wildcards):
    """DNR (fitted experiments) and, for the main experiment, the ceiling's metrics."""
    extras = {}
    settings = EXPERIMENTS[wildcards.experiment]
    if settings.source == "fitted" and settings.cohort == "main":
        extras["dnr"] = "results/dnr/speakers.parquet"
    ceiling = config["identify"].get("ceiling_experiment")
    if ceiling not in EXPERIMENTS:  # no truth without the synthetic cohort
        ceiling = None
    if ceiling and wildcards.experiment == config["identify"].get("main_experiment"):
        extras["ceiling"] = f"results/identify/{ceiling}/metrics.json"
    return extras


def dnr_truth_inputs(wildcards):
    """The synthetic cohort's summary (its truth/ lies beside it) for the DNR validation."""
    if config["dataset"]["kind"] == "synthetic":
        return {"cohort": str(layout.summary(synthetic_cohort_dir()))}
    return {}


FIGURES = "results/figures"


def figure_experiment():
    return config["identify"].get("main_experiment") or next(iter(EXPERIMENTS))


def figure_inputs(wildcards):
    name = figure_experiment()
    base = f"results/identify/{name}"
    return {
        "metrics": f"{base}/metrics.json",
        "fold_metrics": [
            f"{base}/fold{k}/fold_metrics.json" for k in range(n_folds(name))
        ],
        "embeddings": f"{base}/fold0/embeddings.parquet",
        "per_speaker": f"{base}/per_speaker.parquet",
        "dnr": "results/dnr/speakers.parquet",
    }


def summary_inputs(wildcards):
    """Every experiment's metrics and folds (exclusions beyond QC), the DNR summary, the
    QC table (every excluded video is counted) and, synthetic, the fit quality and the
    landmark legibility."""
    inputs = {
        "metrics": [f"results/identify/{name}/metrics.json" for name in EXPERIMENTS],
        "folds": [f"results/identify/{name}/folds.parquet" for name in EXPERIMENTS],
        "dnr": "results/dnr/summary.json",
        "qc": "results/qc/videos.parquet",
    }
    if config["dataset"]["kind"] == "synthetic":
        inputs["quality"] = "results/flame/quality.json"
        inputs["legibility"] = "results/landmarks/legibility.json"
    return inputs


def audit_metrics(wildcards):
    """The metrics of the main experiment, its ceiling and every audit experiment."""
    names = [
        config["identify"].get("main_experiment"),
        config["identify"].get("ceiling_experiment"),
        *AUDIT_EXPERIMENTS,
    ]
    return [f"results/identify/{n}/metrics.json" for n in names if n in EXPERIMENTS]


def audit_figures():
    """The audit's figure, when the run has an audit."""
    return [f"{FIGURES}/audit.png"] if AUDIT_EXPERIMENTS else []


SWEEP_KEYS = {"accuracy_vs_window": "window_sweep", "accuracy_vs_data": "data_sweep"}


def sweep_metrics(sweep):
    return [
        f"results/identify/{name}/metrics.json"
        for name in config["figures"][SWEEP_KEYS[sweep]]
    ]


def sweep_figures():
    """Sweep figures whose experiments are all configured (config/sweeps.yaml adds them)."""
    return [
        f"results/figures/{sweep}.png"
        for sweep, key in SWEEP_KEYS.items()
        if config["figures"][key]
        and all(name in EXPERIMENTS for name in config["figures"][key])
    ]


def figure_video():
    """(session, speaker) of the video the per-video figures draw: the main cohort's first
    readable one (the figures compare it with the main cohort's truth)."""
    index = manifest_index()
    ok = [key for key in manifest_keys(MAIN_COHORT) if index[key]["status"] == "ok"]
    if not ok:
        raise ValueError("no readable video in the manifest to draw")
    return ok[0]


def truth_frame_table(session, speaker):
    """The synthetic cohort's per-frame truth of one video."""
    frames = layout.frames_dir(synthetic_cohort_dir())
    return str(layout.frame_table(frames, session, speaker))


def trace_inputs(wildcards):
    """The figure video's FLAME table and truth (synthetic cohort) for the traces figure."""
    session, speaker = figure_video()
    return {
        "flame": f"results/flame/{session}/{speaker}.parquet",
        "truth": truth_frame_table(session, speaker),
    }


def frames_in_figures_allowed():
    """Figures may show video frames (facedyn.privacy: synthetic cohort, or opted in)."""
    return frames_allowed(
        config["dataset"]["kind"], config["privacy"]["frames_in_figures"]
    )


def landmark_frame_figures():
    """The landmark-frame figure when frames are allowed and the fit has a pinhole camera
    (fit.backend optimize; imported weak-perspective fits cannot be reprojected)."""
    if frames_in_figures_allowed() and config["fit"]["backend"] == "optimize":
        return [f"{FIGURES}/landmark_frame.png"]
    return []


def landmark_frame_inputs(wildcards):
    """The figure video (figure_video): its landmark and FLAME tables, video, head model
    and, if synthetic, its truth."""
    if not frames_in_figures_allowed():
        raise ConfigError(
            "results/figures/landmark_frame.png draws a video frame: allowed for "
            "dataset.kind: synthetic, else only with `privacy.frames_in_figures: true`"
        )
    session, speaker = figure_video()
    inputs = {
        "flame": f"results/flame/{session}/{speaker}.parquet",
        "landmarks": f"results/landmarks/{session}/{speaker}.parquet",
        "model": "results/flame/model.json",
        "video": manifest_index()[(session, speaker)]["video"],
    }
    if config["dataset"]["kind"] == "synthetic":
        inputs["truth"] = truth_frame_table(session, speaker)
    return inputs


def final_targets():
    """What `snakemake` with no target builds: every stage of the pipeline."""
    return [
        "results/flame/model.json",
        "results/qc/videos.parquet",
        "results/dnr/sessions.parquet",
        "results/dnr/speakers.parquet",
        "results/dnr/summary.json",
        *(f"results/identify/{name}/metrics.json" for name in EXPERIMENTS),
        "results/figures/accuracy.png",
        "results/summary.md",
        *audit_figures(),
        *sweep_figures(),
        *landmark_frame_figures(),
        *(
            [
                "results/flame/quality.json",
                "results/figures/fit_quality.png",
                "results/landmarks/legibility.parquet",
                "results/landmarks/legibility.json",
                "results/figures/legibility.png",
            ]
            if config["dataset"]["kind"] == "synthetic"
            else []
        ),
    ]
