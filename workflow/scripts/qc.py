"""QC table: every manifest video, ok or excluded with the reason."""

from facedyn.datasets.manifest import read_manifest
from facedyn.qc import build_qc, index_tables
from facedyn.runtime import provenance, start_job
from facedyn.tables import write_table

start_job(snakemake.log[0], snakemake.threads)
qc = build_qc(
    read_manifest(snakemake.input.manifest),
    index_tables(list(snakemake.input.landmarks)),
    flame_paths=index_tables(list(snakemake.input.flame)),
    **snakemake.params.qc,
)
prov = provenance(snakemake.config, inputs=snakemake.input)
write_table(qc, snakemake.output[0], {"provenance": prov})
