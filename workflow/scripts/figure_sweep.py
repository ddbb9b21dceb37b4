"""One sweep figure from the swept experiments' metrics."""

from pathlib import Path

from facedyn.plots.stage import run_sweep_figure
from facedyn.runtime import start_job

start_job(snakemake.log[0], snakemake.threads)
run_sweep_figure(
    snakemake.wildcards.sweep,
    list(snakemake.input),
    Path(snakemake.output[0]).parent,
    cohort=snakemake.params.cohort,
)
