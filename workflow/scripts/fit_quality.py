"""Fit quality against the synthetic cohort's ground truth."""

import json
from pathlib import Path

from facedyn.atomic import atomic_write_json
from facedyn.flame.quality import cohort_quality, head_expression_modes
from facedyn.runtime import provenance, start_job
from facedyn.synthetic.layout import frame_table
from facedyn.tables import write_table

start_job(snakemake.log[0], snakemake.threads)
truth = Path(snakemake.params.truth)
pairs = [(p, frame_table(truth, Path(p).parent.name, Path(p).stem)) for p in snakemake.input.flame]
modes = head_expression_modes(json.loads(Path(snakemake.input.model).read_text())["model"])
components, videos, summary = cohort_quality(pairs, snakemake.params.n_shape_truth, modes=modes)
meta = {"provenance": provenance(snakemake.config, inputs=snakemake.input)}
write_table(components, snakemake.output.components, meta)
write_table(videos, snakemake.output.videos, meta)
summary["provenance"] = meta["provenance"]
atomic_write_json(snakemake.output.summary, summary)
