"""Landmark legibility figure (synthetic cohort)."""

from pathlib import Path

from facedyn.plots.stage import run_legibility_figure
from facedyn.runtime import setup_logging

setup_logging(snakemake.log[0])
run_legibility_figure(
    snakemake.input.videos,
    snakemake.input.summary,
    Path(snakemake.output[0]).parent,
    cohort=snakemake.params.cohort,
)
