"""Train one encoder on one fold of one experiment."""

import torch

from facedyn.dynamics.experiments import ExperimentSettings
from facedyn.identify.stage import fold_context, run_train
from facedyn.runtime import provenance, setup_logging

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
ctx = fold_context(
    ExperimentSettings(**snakemake.params.settings),
    snakemake.input.qc,
    list(snakemake.input.flame),
    snakemake.input.folds,
    int(snakemake.wildcards.fold),
    truth_dir=snakemake.params.truth_dir,
)
run_train(
    ctx,
    snakemake.output.model,
    snakemake.output.log_csv,
    encoder=snakemake.params.encoder,
    device=snakemake.params.device,
    seed=snakemake.params.seed,
    provenance=provenance(snakemake.config),
)
