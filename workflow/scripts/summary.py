"""results/summary.md from the run's metrics, fit quality, landmark legibility, QC table, folds
and their provenance."""

from facedyn.plots.summary import write_summary
from facedyn.runtime import provenance, start_job

start_job(snakemake.log[0], snakemake.threads)
write_summary(
    snakemake.output[0],
    snakemake.params.run_name,
    list(snakemake.input.metrics),
    dnr_summary=snakemake.input.dnr,
    quality=getattr(snakemake.input, "quality", None),
    legibility=getattr(snakemake.input, "legibility", None),
    main=snakemake.params.main,
    qc=snakemake.input.qc,
    folds=list(snakemake.input.folds),
    provenance=provenance(snakemake.config, inputs=snakemake.input),
    audit_cohorts=snakemake.params.audit_cohorts,
    ceiling=snakemake.params.ceiling,
)
