"""Train one encoder on one fold of one experiment."""

from facedyn.identify.stage import fold_context_of_job, run_train
from facedyn.runtime import provenance, start_job

start_job(snakemake.log[0], snakemake.threads)
ctx = fold_context_of_job(snakemake)
run_train(
    ctx,
    snakemake.output.model,
    snakemake.output.log_csv,
    encoder=snakemake.params.encoder,
    device=snakemake.params.device,
    seed=snakemake.params.seed,
    provenance=provenance(snakemake.config, inputs=snakemake.input),
)
