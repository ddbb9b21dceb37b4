"""Validate the head model and record what downstream stages will use."""

from facedyn.flame.head_model import describe_flame_model
from facedyn.runtime import start_job

start_job(snakemake.log[0], snakemake.threads)
describe_flame_model(
    snakemake.input.model,
    snakemake.input.embedding,
    snakemake.output[0],
    n_shape=snakemake.params.n_shape,
    n_expr=snakemake.params.n_expr,
    yaw_sign=snakemake.params.yaw_sign,
    synthetic=snakemake.params.synthetic,
    config=snakemake.config,
    dense_embedding=snakemake.input.get("dense"),
)
