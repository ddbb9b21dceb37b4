"""Train one encoder on one fold of one experiment."""

from facedyn.identify.stage import fold_context, run_train
from facedyn.runtime import provenance, start_job

start_job(snakemake.log[0], snakemake.threads)
inp, params = snakemake.input, snakemake.params
ctx = fold_context(
    params.settings,
    inp.qc,
    list(inp.flame),
    inp.folds,
    snakemake.wildcards.fold,
    truth_dir=params.truth_dir,
)
run_train(
    ctx,
    snakemake.output.model,
    snakemake.output.log_csv,
    encoder=snakemake.params.encoder,
    device=snakemake.params.device,
    seed=snakemake.params.seed,
    provenance=provenance(snakemake.config, inputs=snakemake.input),
)
