"""Fit (or import) per-frame FLAME parameters for one video."""

import torch

from facedyn.flame.stage import run_fit
from facedyn.runtime import provenance, setup_logging

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
run_fit(
    snakemake.input.landmarks,
    snakemake.input.model,
    snakemake.output[0],
    snakemake.params.fit,
    provenance=provenance(snakemake.config, inputs=snakemake.input),
    seed=snakemake.params.seed,
)
