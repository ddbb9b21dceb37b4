"""Figures of the main experiment and of the fit, marked for `snakemake --report`."""


rule figures:
    """Accuracy with CIs, CMC and DET, DNR vs accuracy, drift vs noise, embedding map."""
    input:
        unpack(figure_inputs),
    output:
        [
            report(
                f"{FIGURES}/{name}.png",
                caption=f"../report/{name}.rst",
                category=category,
            )
            for name, category in IDENTIFICATION_FIGURES.items()
        ],
        pdfs=[f"{FIGURES}/{name}.pdf" for name in IDENTIFICATION_FIGURES],
    log:
        "logs/figures/figures.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cohort=config["run_name"],
        seed=config["seed"],
    script:
        "../scripts/figures.py"


rule figure_fit_quality:
    """Synthetic cohort only: fitted vs true parameters and landmark error."""
    input:
        unpack(trace_inputs),
        videos="results/flame/quality_videos.parquet",
        components="results/flame/quality_components.parquet",
        summary="results/flame/quality.json",
    output:
        report(
            f"{FIGURES}/fit_quality.png",
            caption="../report/fit_quality.rst",
            category="FLAME fitting",
        ),
        report(
            f"{FIGURES}/fit_traces.png",
            caption="../report/fit_traces.rst",
            category="FLAME fitting",
        ),
        pdf=f"{FIGURES}/fit_quality.pdf",
        traces_pdf=f"{FIGURES}/fit_traces.pdf",
    log:
        "logs/figures/fit_quality.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cohort=config["run_name"],
    script:
        "../scripts/figure_fit_quality.py"


rule figure_legibility:
    """Synthetic cohort only: how well the detector reads the true facial measures."""
    input:
        videos="results/landmarks/legibility.parquet",
        summary="results/landmarks/legibility.json",
    output:
        report(
            f"{FIGURES}/legibility.png",
            caption="../report/legibility.rst",
            category="Landmarks",
        ),
        pdf=f"{FIGURES}/legibility.pdf",
    log:
        "logs/figures/legibility.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        cohort=config["run_name"],
    script:
        "../scripts/figure_legibility.py"


rule figure_landmark_frame:
    """One video frame with detected and fitted (and, synthetic, true) landmarks; only
    where frames are allowed (synthetic cohort or privacy.frames_in_figures)."""
    input:
        unpack(landmark_frame_inputs),
    output:
        report(
            f"{FIGURES}/landmark_frame.png",
            caption="../report/landmark_frame.rst",
            category="FLAME fitting",
        ),
        pdf=f"{FIGURES}/landmark_frame.pdf",
    log:
        "logs/figures/landmark_frame.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cohort=config["run_name"],
        dataset_kind=config["dataset"]["kind"],
        frames_in_figures=config["privacy"]["frames_in_figures"],
    script:
        "../scripts/figure_landmark_frame.py"


rule summary:
    """results/summary.md: the headline numbers of every experiment, generated."""
    input:
        unpack(summary_inputs),
    output:
        report(
            "results/summary.md", caption="../report/summary.rst", category="Summary"
        ),
    log:
        "logs/figures/summary.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        run_name=config["run_name"],
        main=config["identify"].get("main_experiment"),
        ceiling=config["identify"].get("ceiling_experiment"),
        audit_cohorts=AUDIT_COHORTS,
    script:
        "../scripts/summary.py"


rule figure_audit:
    """The appearance-leak audit: every model on the main cohort and on each control."""
    input:
        audit_metrics,
    output:
        report(
            f"{FIGURES}/audit.png",
            caption="../report/audit.rst",
            category="Identification",
        ),
        pdf=f"{FIGURES}/audit.pdf",
    log:
        "logs/figures/audit.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        run_name=config["run_name"],
        main=config["identify"].get("main_experiment"),
        ceiling=config["identify"].get("ceiling_experiment"),
        audit_cohorts=AUDIT_COHORTS,
    script:
        "../scripts/figure_audit.py"


rule figure_sweep:
    """Accuracy against window length or amount of training data (config `figures.*`)."""
    input:
        lambda w: sweep_metrics(w.sweep),
    output:
        report(
            "results/figures/{sweep}.png",
            caption="../report/sweep.rst",
            category="Sweeps",
        ),
        pdf="results/figures/{sweep}.pdf",
    log:
        "logs/figures/{sweep}.log",
    wildcard_constraints:
        sweep="|".join(SWEEP_KEYS),
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        cohort=config["run_name"],
    script:
        "../scripts/figure_sweep.py"
