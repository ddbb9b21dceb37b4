"""Identity from dynamics: train encoders per fold, score every model on the same folds,
pool the folds into metrics.json (contracts: docs/pipeline.md)."""


rule train:
    """The experiment's encoder (SupCon, M-per-class batches) on one fold. GPU when
    available: the profile, not the rule, asks the cluster for one (profiles/slurm)."""
    input:
        unpack(truth_inputs),
        qc="results/qc/videos.parquet",
        flame=experiment_flame_tables,
        folds="results/identify/{experiment}/folds.parquet",
    output:
        model="results/identify/{experiment}/fold{fold}/model.pt",
        status=str(status_path("results/identify/{experiment}/fold{fold}/model.pt")),
        log_csv="results/identify/{experiment}/fold{fold}/train_log.csv",
    log:
        "logs/identify/{experiment}/fold{fold}/train.log",
    benchmark:
        "results/benchmarks/train/{experiment}/fold{fold}.tsv"
    # Longest first, so that the run does not end on one training alone: the experiment's
    # encoder (a Conformer by default, the costliest per fold), then the baselines, TCN
    # before LSTM (docs/performance.md).
    priority: TRAINING_PRIORITY["experiment"]
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=lambda wildcards, input: 8000 + 4 * len(input.flame),
        runtime=lambda wildcards, attempt: 120 * attempt,
        gpu=gpu_slots(config["identify"]["device"]),
    params:
        settings=experiment_params,
        truth_dir=truth_dir,
        device=config["identify"]["device"],
        seed=config["seed"],
        encoder=None,
    script:
        "../scripts/train.py"


use rule train as train_baseline_encoder with:
    output:
        model="results/identify/{experiment}/fold{fold}/{encoder}.pt",
        status=str(status_path("results/identify/{experiment}/fold{fold}/{encoder}.pt")),
        log_csv="results/identify/{experiment}/fold{fold}/{encoder}_train_log.csv",
    log:
        "logs/identify/{experiment}/fold{fold}/train_{encoder}.log",
    benchmark:
        "results/benchmarks/train/{experiment}/fold{fold}_{encoder}.tsv"
    priority: lambda wildcards: TRAINING_PRIORITY[wildcards.encoder]
    params:
        settings=experiment_params,
        truth_dir=truth_dir,
        device=config["identify"]["device"],
        seed=config["seed"],
        encoder=lambda wildcards: wildcards.encoder,


rule evaluate:
    """Every model of the experiment on one fold's test windows: predictions (one row per
    test window and model), the encoder's test embeddings, per-model identification and
    verification."""
    input:
        unpack(evaluate_checkpoints),
        unpack(truth_inputs),
        qc="results/qc/videos.parquet",
        flame=experiment_flame_tables,
        folds="results/identify/{experiment}/folds.parquet",
    output:
        predictions="results/identify/{experiment}/fold{fold}/predictions.parquet",
        embeddings="results/identify/{experiment}/fold{fold}/embeddings.parquet",
        metrics="results/identify/{experiment}/fold{fold}/fold_metrics.json",
    log:
        "logs/identify/{experiment}/fold{fold}/evaluate.log",
    benchmark:
        "results/benchmarks/evaluate/{experiment}/fold{fold}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=lambda wildcards, input: 8000 + 4 * len(input.flame),
        runtime=lambda wildcards, attempt: 60 * attempt,
        gpu=gpu_slots(config["identify"]["device"]),
    params:
        settings=experiment_params,
        truth_dir=truth_dir,
        device=config["identify"]["device"],
        seed=config["seed"],
    script:
        "../scripts/evaluate.py"


rule experiment_metrics:
    """All folds of one experiment pooled: metrics.json (top-1/5 with speaker-bootstrap CIs,
    session level, EER, minDCF, DNR vs accuracy, extraction efficiency), per_speaker."""
    input:
        unpack(experiment_metrics_extras),
        predictions=lambda w: fold_files(w, "predictions.parquet"),
        fold_metrics=lambda w: fold_files(w, "fold_metrics.json"),
        flame=experiment_flame_tables,
    output:
        metrics="results/identify/{experiment}/metrics.json",
        per_speaker="results/identify/{experiment}/per_speaker.parquet",
    log:
        "logs/identify/{experiment}/experiment_metrics.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=experiment_params,
        seed=config["seed"],
    script:
        "../scripts/experiment_metrics.py"
