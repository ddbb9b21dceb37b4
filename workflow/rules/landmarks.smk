"""Face tracking and 68-point landmarks, one job per manifest video; QC over all videos."""


rule landmarks:
    input:
        unpack(landmarks_inputs),
    output:
        "results/landmarks/{session}/{speaker}.parquet",
    log:
        "logs/landmarks/{session}/{speaker}.log",
    benchmark:
        "results/benchmarks/landmarks/{session}/{speaker}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=lambda wildcards, attempt: 60 * attempt,
        gpu=gpu_slots("auto") if config["landmarks"]["backend"] == "insightface" else 0,
    params:
        row=manifest_row,
        settings=config["landmarks"],
    script:
        "../scripts/landmarks.py"


rule qc:
    """Status of every manifest video: ok, or excluded with the reason."""
    input:
        manifest="results/cohort/manifest.parquet",
        landmarks=all_landmark_tables,
        flame=all_flame_tables,
    output:
        "results/qc/videos.parquet",
    log:
        "logs/qc/qc.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        qc=config["qc"],
    script:
        "../scripts/qc.py"


rule legibility:
    """Synthetic cohort only: detected vs true landmarks as facial measures (mouth opening
    and width, brow height, eye opening), NME and detection rate (validation: reads the
    cohort's truth/)."""
    input:
        landmarks=main_landmark_tables,
        cohort=str(layout.cohort_file(synthetic_cohort_dir())),
    output:
        videos="results/landmarks/legibility.parquet",
        summary="results/landmarks/legibility.json",
    log:
        "logs/landmarks/legibility.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        truth=str(layout.frames_dir(synthetic_cohort_dir())),
    script:
        "../scripts/legibility.py"
