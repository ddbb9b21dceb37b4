"""Landmark legibility against the synthetic cohort's ground truth."""

from facedyn.face.legibility import run_legibility
from facedyn.runtime import provenance, start_job

start_job(snakemake.log[0], snakemake.threads)
run_legibility(
    snakemake.input.landmarks,
    snakemake.params.truth,
    {"videos": snakemake.output.videos, "summary": snakemake.output.summary},
    provenance=provenance(snakemake.config, inputs=snakemake.input),
)
