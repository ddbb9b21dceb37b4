"""Index the dataset into results/cohort/manifest.parquet."""

from pathlib import Path

from facedyn.cohort.indexers import build_manifest
from facedyn.runtime import start_job

start_job(snakemake.log[0], snakemake.threads)
synthetic_root = Path(snakemake.input[0]).parent if snakemake.input else None
build_manifest(
    snakemake.params.dataset,
    snakemake.output[0],
    synthetic_root=synthetic_root,
    workers=snakemake.threads,
    config=snakemake.config,
)
