"""The head model: the procedural stand-in (offline default) or the user's FLAME file."""


rule synthetic_flame:
    output:
        model="resources/flame/synthetic/synthetic_head.pkl",
        embedding="resources/flame/synthetic/landmark_embedding.npy",
        components="resources/flame/synthetic/components.json",
    log:
        "logs/flame/synthetic_flame.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        n_shape=config["flame"]["n_shape"],
        n_expr=config["flame"]["n_expr"],
        seed=config["flame"]["synthetic"]["seed"],
    script:
        "../scripts/synthetic_flame.py"


rule synthetic_dense_embedding:
    """Where MediaPipe's face-mesh points sit on the synthetic head, measured on renders of
    a calibration cohort of its own (facedyn.synthetic.dense_calibration)."""
    input:
        model=rules.synthetic_flame.output.model,
        embedding=rules.synthetic_flame.output.embedding,
        components=rules.synthetic_flame.output.components,
    output:
        "resources/flame/synthetic/mediapipe_landmark_embedding.npz",
    log:
        "logs/flame/synthetic_dense_embedding.log",
    benchmark:
        "results/benchmarks/synthetic_dense_embedding.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=3000,
        runtime=20,
    script:
        "../scripts/synthetic_dense_embedding.py"


rule flame_model:
    """Load and validate the head model once; downstream rules read model.json."""
    input:
        unpack(flame_model_inputs),
    output:
        "results/flame/model.json",
    log:
        "logs/flame/flame_model.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        n_shape=config["flame"]["n_shape"],
        n_expr=config["flame"]["n_expr"],
        yaw_sign=config["flame"]["yaw_sign"],
        synthetic=flame_is_synthetic(),
    script:
        "../scripts/flame_model.py"


rule fit_flame:
    """Per-frame FLAME parameters of one video. GPU when available: the profile, not the
    rule, asks the cluster for one (profiles/slurm)."""
    input:
        landmarks="results/landmarks/{session}/{speaker}.parquet",
        model="results/flame/model.json",
    output:
        "results/flame/{session}/{speaker}.parquet",
    log:
        "logs/flame/{session}/{speaker}.log",
    benchmark:
        "results/benchmarks/fit_flame/{session}/{speaker}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=lambda wildcards, attempt: 60 * attempt,
        gpu=gpu_slots(config["fit"]["device"]),
    params:
        fit=sorted_config(config["fit"]),
        seed=config["seed"],
    script:
        "../scripts/fit_flame.py"


rule fit_quality:
    """Synthetic cohort only: fitted vs true expression, jaw and shape, and the NME
    distribution (validation: reads the cohort's truth/)."""
    input:
        flame=main_flame_tables,
        cohort=str(layout.cohort_file(synthetic_cohort_dir())),
        model="results/flame/model.json",
    output:
        summary="results/flame/quality.json",
        components="results/flame/quality_components.parquet",
        videos="results/flame/quality_videos.parquet",
    log:
        "logs/flame/fit_quality.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        truth=str(layout.frames_dir(synthetic_cohort_dir())),
        n_shape_truth=config["dataset"]["synthetic"]["n_shape"],
    script:
        "../scripts/fit_quality.py"
