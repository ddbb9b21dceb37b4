"""facedyn: identity from facial-expression dynamics.

Run the embedded default (synthetic cohort, offline, CPU):  snakemake --cores 8
Contracts (paths, tables, DAG): docs/pipeline.md. Every config key: config/README.md.
"""

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml", set_default=True)


include: "workflow/rules/common.smk"
include: "workflow/rules/flame.smk"
include: "workflow/rules/cohort.smk"
include: "workflow/rules/landmarks.smk"
include: "workflow/rules/dynamics.smk"
include: "workflow/rules/identify.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        final_targets(),
