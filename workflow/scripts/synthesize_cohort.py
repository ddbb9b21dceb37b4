"""Generate the synthetic cohort (videos in CANDOR's layout + ground truth)."""

from pathlib import Path

from facedyn.cohort.synthetic import write_cohort
from facedyn.runtime import setup_logging

# The generator's worker processes are started with "spawn", which re-imports this file:
# the guard keeps them from running the job again.
if __name__ == "__main__":
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
