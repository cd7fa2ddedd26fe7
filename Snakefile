from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless --configfile names the configuration: a full one (configs/paper.yaml)
# must not inherit the demo's named entries (merges, baselines) through Snakemake's recursive merge;
# an overlay names its base first (--configfile config.yaml configs/chebi20.yaml).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"


# No envvars: the Hugging Face token is resolved by huggingface_hub itself (HF_TOKEN, or the file
# `hf auth login` writes), and only downloads of gated models need one; download_model names the
# model and the login command when it is missing. A dry run needs no token.


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
