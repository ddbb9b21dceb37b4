"""Train one encoder on one fold of one experiment."""

import torch

from facedyn.identify.stage import fold_context_of_job, run_train
from facedyn.runtime import provenance, setup_logging

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
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
