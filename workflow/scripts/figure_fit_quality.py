"""Fit-quality figure (synthetic cohort)."""

from pathlib import Path

from facedyn.plots.stage import run_fit_quality_figure
from facedyn.runtime import setup_logging

setup_logging(snakemake.log[0])
run_fit_quality_figure(
    snakemake.input.videos,
    snakemake.input.components,
    snakemake.input.summary,
    Path(snakemake.output[0]).parent,
    cohort=snakemake.params.cohort,
    traces=(snakemake.input.flame, snakemake.input.truth),
)
