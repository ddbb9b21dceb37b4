"""Landmark legibility against the synthetic cohort's ground truth."""

import logging
from pathlib import Path

from facedyn.atomic import atomic_write_json
from facedyn.face.legibility import cohort_legibility
from facedyn.runtime import provenance, start_job
from facedyn.tables import write_table

start_job(snakemake.log[0], snakemake.threads)
log = logging.getLogger("legibility")
truth = Path(snakemake.params.truth)
pairs = [(p, truth / Path(p).parent.name / Path(p).name) for p in snakemake.input.landmarks]
videos, summary = cohort_legibility(pairs)
meta = {"provenance": provenance(snakemake.config, inputs=snakemake.input)}
write_table(videos, snakemake.output.videos, meta)
summary["provenance"] = meta["provenance"]
atomic_write_json(snakemake.output.summary, summary)
log.info(
    "%d videos; median r %s; NME %s; detection %s; targets met %d of %d",
    summary["videos"],
    {m: None if r is None else round(r, 3) for m, r in summary["r_median"].items()},
    summary["nme_median"],
    summary["detection_rate"],
    summary["targets_met"],
    summary["targets_total"],
)
