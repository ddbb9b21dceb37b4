"""One frame with detected and fitted landmarks (synthetic cohort or privacy opt-in)."""

from pathlib import Path

from facedyn.plots.stage import run_landmark_frame_figure
from facedyn.runtime import start_job

start_job(snakemake.log[0], snakemake.threads)
run_landmark_frame_figure(
    snakemake.input.flame,
    snakemake.input.landmarks,
    snakemake.input.model,
    snakemake.input.video,
    Path(snakemake.output[0]).parent,
    cohort=snakemake.params.cohort,
    dataset_kind=snakemake.params.dataset_kind,
    frames_in_figures=snakemake.params.frames_in_figures,
    truth_path=getattr(snakemake.input, "truth", None),
)
