"""Identification and DNR figures of the main experiment."""

from pathlib import Path

from facedyn.plots.stage import run_identify_figures
from facedyn.runtime import start_job

start_job(snakemake.log[0], snakemake.threads)
run_identify_figures(
    snakemake.input.metrics,
    list(snakemake.input.fold_metrics),
    snakemake.input.embeddings,
    snakemake.input.per_speaker,
    snakemake.input.dnr,
    Path(snakemake.output[0]).parent,
    cohort=snakemake.params.cohort,
    seed=snakemake.params.seed,
)
