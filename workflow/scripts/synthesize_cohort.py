"""Generate the synthetic cohort (videos in CANDOR's layout + ground truth)."""

from pathlib import Path

from facedyn.runtime import start_job
from facedyn.synthetic.generate import write_cohort

# The generator's worker processes are started with "spawn", which re-imports this file:
# the guard keeps them from running the job again.
if __name__ == "__main__":
    start_job(snakemake.log[0], snakemake.threads)
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
