"""Write the procedural FLAME-format stand-in head (never the real FLAME)."""

import logging

from facedyn.flame import write_synthetic_flame
from facedyn.runtime import start_job

start_job(snakemake.log[0], snakemake.threads)
paths = write_synthetic_flame(
    snakemake.output.model.rsplit("/", 1)[0],
    n_shape=snakemake.params.n_shape,
    n_expr=snakemake.params.n_expr,
    seed=snakemake.params.seed,
)
logging.getLogger("facedyn").info("wrote synthetic head: %s", {k: str(v) for k, v in paths.items()})
