from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"


# Gated Hub models (Meditron, Llama-3) need a token when the config downloads anything.
if EXPERIMENT.uses_hub():

    envvars:
        "HF_TOKEN",


include: "rules/data.smk"
include: "rules/bootstrap.smk"
include: "rules/negatives.smk"
include: "rules/merge.smk"
include: "rules/align.smk"
include: "rules/generate.smk"
include: "rules/score.smk"
include: "rules/nli.smk"
include: "rules/tables.smk"


rule all:
    default_target: True
    input:
        EXPERIMENT.targets(),
