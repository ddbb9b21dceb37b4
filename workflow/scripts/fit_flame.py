"""Fit (or import) per-frame FLAME parameters for one video."""

from facedyn.flame.stage import run_fit
from facedyn.runtime import provenance, start_job

start_job(snakemake.log[0], snakemake.threads)
run_fit(
    snakemake.input.landmarks,
    snakemake.input.model,
    snakemake.output[0],
    snakemake.params.fit,
    provenance=provenance(snakemake.config, inputs=snakemake.input),
    seed=snakemake.params.seed,
)
