"""The dataset: the synthetic cohort (embedded default) and the manifest of all videos."""


rule synthesize_cohort:
    """Generate the synthetic CANDOR-shaped corpus and its ground truth."""
    input:
        model=rules.synthetic_flame.output.model,
        embedding=rules.synthetic_flame.output.embedding,
        components=rules.synthetic_flame.output.components,
    output:
        f"resources/synthetic/{{cohort}}/{layout.COHORT_FILE}",
    log:
        "logs/cohort/synthesize_{cohort}.log",
    benchmark:
        "results/benchmarks/synthesize_{cohort}.tsv"
    conda:
        ENV
    threads: 8  # capped at --cores locally; a fixed number works on a cluster too
    resources:
        mem_mb=lambda wildcards, threads: 1500 + 1000 * threads,
        runtime=120,
    params:
        synthetic=cohort_synthetic_settings,
    script:
        "../scripts/synthesize_cohort.py"


checkpoint manifest:
    """One row per speaker-session video, with probe results (fps, size, status)."""
    input:
        unpack(manifest_inputs),
    output:
        "results/cohort/manifest.parquet",
    log:
        "logs/cohort/manifest.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        dataset=sorted_config(config["dataset"]),
    script:
        "../scripts/manifest.py"
