"""Generate the synthetic cohort (videos in CANDOR's layout + ground truth)."""

from pathlib import Path

from facedyn.cohort.synthetic import write_cohort
from facedyn.runtime import setup_logging

setup_logging(snakemake.log[0])
write_cohort(
    Path(snakemake.output[0]).parent,
    snakemake.params.synthetic,
    head_model=snakemake.input.model,
    head_embedding=snakemake.input.embedding,
    head_components=snakemake.input.components,
    workers=snakemake.threads,
    summary_path=snakemake.output[0],
    config=snakemake.config,
)
