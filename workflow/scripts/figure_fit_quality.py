"""Fit-quality figure (synthetic cohort)."""

from pathlib import Path

from facedyn.plots.stage import run_fit_quality_figure
from facedyn.runtime import start_job

start_job(snakemake.log[0], snakemake.threads)
run_fit_quality_figure(
    snakemake.input.videos,
    snakemake.input.components,
    snakemake.input.summary,
    Path(snakemake.output[0]).parent,
    cohort=snakemake.params.cohort,
    traces=(snakemake.input.flame, snakemake.input.truth),
)
