"""Drift-to-noise ratio of the estimated face shape, and the folds of every identification
experiment (windows, protocols, leakage check)."""


rule dnr:
    """Drift, noise and DNR of every speaker's shape estimates (QC-ok videos only); on the
    synthetic cohort also the rank correlation of DNR with the generator's instability.
    """
    input:
        unpack(dnr_truth_inputs),
        qc="results/qc/videos.parquet",
        flame=main_flame_tables,
    output:
        sessions="results/dnr/sessions.parquet",
        speakers="results/dnr/speakers.parquet",
        summary="results/dnr/summary.json",
    log:
        "logs/dnr/dnr.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        dnr=sorted_config(config["dnr"]),
    script:
        "../scripts/dnr.py"


rule folds:
    """Cross-validation folds of one experiment (`identify.experiments`), checked for
    train/test leakage before they are written."""
    input:
        unpack(truth_inputs),
        qc="results/qc/videos.parquet",
        flame=experiment_flame_tables,
    output:
        "results/identify/{experiment}/folds.parquet",
    log:
        "logs/identify/{experiment}/folds.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=experiment_params,
        truth_dir=truth_dir,
    script:
        "../scripts/folds.py"
