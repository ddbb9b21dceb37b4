"""Measure the synthetic head's MediaPipe dense embedding."""

from facedyn.runtime import start_job
from facedyn.synthetic.dense_calibration import calibrate_dense_embedding

# The calibration cohort's worker processes are started with "spawn", which re-imports this
# file: the guard keeps them from running the job again.
if __name__ == "__main__":
    start_job(snakemake.log[0], snakemake.threads)
    calibrate_dense_embedding(
        snakemake.input.model,
        snakemake.input.embedding,
        snakemake.input.components,
        snakemake.output[0],
        workers=snakemake.threads,
    )
