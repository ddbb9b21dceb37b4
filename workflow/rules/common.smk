"""Shared by all rules, in this order: pre-flight checks (run while the DAG is built, before
any job), then the input functions. Nothing here may be slow: the Snakefile is re-parsed by
every cluster job."""

import functools
import os
import re

import pandas as pd
from snakemake.logging import logger

from facedyn.audit import MAIN_COHORT
from facedyn.identify.checkpoint import status_path  # a checkpoint's training record
from facedyn.synthetic import layout  # the synthetic cohort's files
from facedyn.config import (  # what the schema cannot check (docs/pipeline.md)
    SYNTHETIC,
    check_config,
    check_dataset_source,
    check_frames_in_figures,
    dense_embedding_file,
    is_synthetic_head,
    real_head_model_files,
)
from facedyn.config import frames_in_figures_allowed as _frames_allowed
from facedyn.gpu import gpu_slots  # resources: gpu=0/1 (docs/cluster.md)
from facedyn.identify.experiments import ENCODER_BASELINES
from facedyn.names import IDENTIFICATION_FIGURES, SAFE_ID
from facedyn.runtime import cap_core_budget, core_budget  # Snakemake's core budget
from facedyn.runtime import local_core_limit  # the core budget of a local run
from facedyn.runtime import sorted_config  # params independent of config key order

ENV = "../../envs/facedyn.yaml"


wildcard_constraints:
    session=SAFE_ID,
    speaker=SAFE_ID,


# --- configuration helpers (the checks and the input functions use them) -------------------------


def flame_is_synthetic():
    return is_synthetic_head(config)


def dense_embedding_input():
    """The dense embedding's file, or nothing (`flame.dense_embedding`)."""
    dense = dense_embedding_file(config)
    if dense is None:
        return {}
    if dense == SYNTHETIC:
        return {"dense": rules.synthetic_dense_embedding.output[0]}
    return {"dense": dense}


def flame_model_inputs(wildcards):
    """The head model files: the generated stand-in, or the user's licensed FLAME."""
    if flame_is_synthetic():
        return {
            "model": rules.synthetic_flame.output.model,
            "embedding": rules.synthetic_flame.output.embedding,
            **dense_embedding_input(),
        }
    return {**real_head_model_files(config), **dense_embedding_input()}


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
# The files (manifest table, head model) are read by the main process only: cluster jobs
# re-parse this file and need not read them again.

CHECKED_CONFIG = check_config(
    config, read_files=workflow.is_main_process, log=logger.info
)
AUDIT_COHORTS = CHECKED_CONFIG.audit_cohorts
AUDIT_EXPERIMENTS = CHECKED_CONFIG.audit_experiments
EXPERIMENTS = CHECKED_CONFIG.experiments


def hold_cores_to_cpus():
    """A local run uses at most the CPUs it has: with `--cores 8` on 2 CPUs Snakemake would
    run eight single-thread jobs at once, each slower by the shared caches and memory, and
    the run longer (docs/performance.md). Snakemake has no setting for this, so the core
    budget `--cores` gave (which also caps every rule's threads) is lowered here
    (facedyn.runtime.cap_core_budget). Cluster runs (`--jobs`, where --cores caps the
    threads of remote jobs) and the jobs they start keep theirs."""
    if not workflow.is_main_process or workflow.resource_settings.nodes is not None:
        return
    requested = core_budget(workflow)
    limit = local_core_limit(requested)
    if limit != requested:
        cap_core_budget(workflow, limit)
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
        f"audit_{name}": str(layout.cohort_file(synthetic_cohort_dir(name)))
        for name in AUDIT_COHORTS
    }
    check_dataset_source(config)
    if config["dataset"]["kind"] == "synthetic":
        return {"synthetic": str(layout.cohort_file(synthetic_cohort_dir())), **audit}
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
        return {
            "cohort": str(layout.cohort_file(synthetic_cohort_dir(settings.cohort)))
        }
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
        inputs[f"status_{name}"] = str(status_path(inputs[f"ckpt_{name}"]))
    return inputs


def experiment_metrics_extras(wildcards):
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
        return {"cohort": str(layout.cohort_file(synthetic_cohort_dir()))}
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
    return _frames_allowed(config)


def landmark_frame_figures():
    """The landmark-frame figure when frames are allowed and the fit has a pinhole camera
    (fit.backend optimize; imported weak-perspective fits cannot be reprojected)."""
    if frames_in_figures_allowed() and config["fit"]["backend"] == "optimize":
        return [f"{FIGURES}/landmark_frame.png"]
    return []


def landmark_frame_inputs(wildcards):
    """The figure video (figure_video): its landmark and FLAME tables, video, head model
    and, if synthetic, its truth."""
    check_frames_in_figures(config)
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
