"""Fit quality against the synthetic cohort's ground truth."""

from facedyn.flame.quality import run_fit_quality
from facedyn.runtime import provenance, start_job

start_job(snakemake.log[0], snakemake.threads)
run_fit_quality(
    snakemake.input.flame,
    snakemake.params.truth,
    snakemake.input.model,
    {
        "components": snakemake.output.components,
        "videos": snakemake.output.videos,
        "summary": snakemake.output.summary,
    },
    n_shape_truth=snakemake.params.n_shape_truth,
    provenance=provenance(snakemake.config, inputs=snakemake.input),
)
