"""Index the dataset into results/cohort/manifest.parquet."""

from pathlib import Path

from facedyn.datasets.manifest import build_manifest
from facedyn.runtime import start_job

start_job(snakemake.log[0], snakemake.threads)
inputs = dict(snakemake.input.items())
synthetic = inputs.pop("synthetic", None)
build_manifest(
    snakemake.params.dataset,
    snakemake.output[0],
    synthetic_root=Path(synthetic).parent if synthetic else None,
    workers=snakemake.threads,
    config=snakemake.config,
    cohorts={name.removeprefix("audit_"): Path(path).parent for name, path in inputs.items()},
)
