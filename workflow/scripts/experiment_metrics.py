"""Pool the folds of one experiment: metrics.json and per_speaker.parquet."""

from facedyn.identify.experiments import ExperimentSettings
from facedyn.identify.stage import run_experiment_metrics
from facedyn.runtime import provenance, start_job

start_job(snakemake.log[0], snakemake.threads)
run_experiment_metrics(
    ExperimentSettings(**snakemake.params.settings),
    list(snakemake.input.predictions),
    list(snakemake.input.fold_metrics),
    {"metrics": snakemake.output.metrics, "per_speaker": snakemake.output.per_speaker},
    dnr_speakers=getattr(snakemake.input, "dnr", None),
    ceiling_metrics=getattr(snakemake.input, "ceiling", None),
    seed=snakemake.params.seed,
    provenance=provenance(snakemake.config, inputs=snakemake.input),
    flame_paths=list(snakemake.input.flame),
)
