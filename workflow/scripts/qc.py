"""QC table: every manifest video, ok or excluded with the reason."""

from facedyn.qc import run_qc
from facedyn.runtime import provenance, start_job

start_job(snakemake.log[0], snakemake.threads)
run_qc(
    snakemake.input.manifest,
    snakemake.input.landmarks,
    snakemake.input.flame,
    snakemake.output[0],
    snakemake.params.qc,
    provenance=provenance(snakemake.config, inputs=snakemake.input),
)
