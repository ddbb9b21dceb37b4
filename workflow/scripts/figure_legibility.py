"""Landmark legibility figure (synthetic cohort)."""

from pathlib import Path

from facedyn.plots.stage import run_legibility_figure
from facedyn.runtime import start_job

start_job(snakemake.log[0], snakemake.threads)
run_legibility_figure(
    snakemake.input.videos,
    snakemake.input.summary,
    Path(snakemake.output[0]).parent,
    cohort=snakemake.params.cohort,
)
