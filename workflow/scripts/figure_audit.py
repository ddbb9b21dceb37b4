"""The appearance-leak audit's figure from the main, ceiling and audit experiments' metrics."""

from pathlib import Path

from facedyn.plots.audit import run_audit_figure
from facedyn.runtime import start_job

start_job(snakemake.log[0], snakemake.threads)
run_audit_figure(
    list(snakemake.input),
    snakemake.params.audit_cohorts,
    snakemake.params.main,
    snakemake.params.ceiling,
    Path(snakemake.output[0]).parent,
    run_name=snakemake.params.run_name,
)
