"""Folds of one identification experiment: results/identify/{experiment}/folds.parquet."""

from facedyn.dynamics.stage import run_folds
from facedyn.identify.experiments import ExperimentSettings
from facedyn.runtime import provenance, start_job

start_job(snakemake.log[0], snakemake.threads)
run_folds(
    snakemake.input.qc,
    list(snakemake.input.flame),
    snakemake.output[0],
    ExperimentSettings(**snakemake.params.settings),
    provenance=provenance(snakemake.config, inputs=snakemake.input),
    truth_dir=snakemake.params.truth_dir,
)
