"""Score every model of one experiment on one fold's test windows."""

from facedyn.identify.stage import fold_context, run_evaluate
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
checkpoints = {k[len("ckpt_") :]: v for k, v in snakemake.input.items() if k.startswith("ckpt_")}
run_evaluate(
    ctx,
    checkpoints,
    {
        "predictions": snakemake.output.predictions,
        "embeddings": snakemake.output.embeddings,
        "metrics": snakemake.output.metrics,
    },
    device=snakemake.params.device,
    seed=snakemake.params.seed,
    provenance=provenance(snakemake.config, inputs=snakemake.input),
)
