"""Drift-to-noise ratio of every speaker: results/dnr/{sessions,speakers}.parquet, summary.json."""

from facedyn.dynamics.stage import run_dnr
from facedyn.runtime import provenance, start_job
from facedyn.synthetic.layout import root_of, speakers_table

start_job(snakemake.log[0], snakemake.threads)
cohort = getattr(snakemake.input, "cohort", None)  # synthetic cohort: validate against truth
truth = speakers_table(root_of(cohort)) if cohort else None
run_dnr(
    snakemake.input.qc,
    list(snakemake.input.flame),
    {
        "sessions": snakemake.output.sessions,
        "speakers": snakemake.output.speakers,
        "summary": snakemake.output.summary,
    },
    **snakemake.params.dnr,
    truth_speakers=truth,
    provenance=provenance(snakemake.config, inputs=snakemake.input),
)
