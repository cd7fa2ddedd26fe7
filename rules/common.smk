import os
import re
import sys

# The Snakefile process imports molmix from the checkout; scripts find it through the
# workflow/scripts/molmix link (Snakemake puts the script folder on their sys.path).
sys.path.insert(0, f"{workflow.basedir}/workflow")
from molmix import layout
from molmix.config import dataset_revisions, hub_loading, validate_config
from molmix.layout import Experiment
from molmix.names import ALIGN_METHODS, CAPTION_TASK, NLI_METHODS, SPLITS, TASKS
from molmix.runtime import portable_cpu_environment

# Jobs inherit this environment: the same CPU float results on every x86-64 machine with AVX2.
os.environ.update(portable_cpu_environment())

# JSON Schema validation with defaults filled in (workflow/schemas/config.schema.yaml) and every
# cross-key check, reporting each bad key by its dotted path, before any rule is defined.
validate_config(config)
EXPERIMENT = Experiment(config)


def one_of(names):
    """A wildcard constraint matching exactly these names ('.' in a name is no regex wildcard)."""
    return "|".join(map(re.escape, sorted(names))) or "NONE"


wildcard_constraints:
    dataset=one_of([EXPERIMENT.dataset]),
    split=one_of(SPLITS),
    task=one_of(TASKS),
    merge=one_of(EXPERIMENT.merges),
    init=one_of({init for init, _ in EXPERIMENT.aligned}),
    method=one_of(ALIGN_METHODS),
    system=layout.SYSTEM_PATTERN,


def named(pattern, wildcard, values):
    """{value: pattern with that value for the wildcard}, the other wildcards left to Snakemake."""
    return {
        value: expand(pattern, allow_missing=True, **{wildcard: value})[0]
        for value in values
    }


RAW = named(layout.RAW_SPLIT, "split", SPLITS)
DATA = named(layout.SPLIT, "split", SPLITS)


def scaled(amount):
    """A resource that grows with the attempt number (memory in MB, runtime in minutes)."""
    return lambda wildcards, attempt: amount * attempt


# Input and params functions: the rules' glue to molmix.layout.Experiment.


def hub_repo_id(wildcards):
    return EXPERIMENT.hub_models()[wildcards.hub_model]


def hub_revision(wildcards):
    """The commit hub.revisions pins for this model (None = main): a new pin downloads it again."""
    return hub_loading(config, hub_repo_id(wildcards))["revision"]


def merge_spec(wildcards):
    """The configuration of one merge only, so editing it re-runs that merge alone."""
    return EXPERIMENT.merges[wildcards.merge]


def negative_model(wildcards):
    return EXPERIMENT.negative_model(wildcards.task)


def negative_model_name(wildcards):
    return EXPERIMENT.negative_model_name(wildcards.task)


def init_model(wildcards):
    return EXPERIMENT.init_model(wildcards.init)


def alignment_settings(wildcards):
    return EXPERIMENT.alignment_settings(wildcards.method)


def system_models(wildcards):
    """{<task>_model: folder} of one evaluated system."""
    return {
        f"{task}_model": EXPERIMENT.system_model(wildcards.system, task)
        for task in TASKS
    }


def system_loading(wildcards):
    """{task: {revision, trust_remote_code}} of one system's model folders, for from_pretrained."""
    return {
        task: hub_loading(config, EXPERIMENT.system_model(wildcards.system, task))
        for task in TASKS
    }


def input_prefixes(wildcards):
    return EXPERIMENT.input_prefixes(wildcards.system)


def decomposer_models(wildcards):
    return EXPERIMENT.decomposer_models()


def table_score_files(wildcards):
    return EXPERIMENT.table_score_files()


def alignment_summary_inputs(wildcards):
    return EXPERIMENT.alignment_summary_inputs()


def figure_inputs(wildcards):
    return EXPERIMENT.figure_inputs()


def nli_score_files(wildcards):
    return EXPERIMENT.nli_score_files()


def nli_ranking_inputs(wildcards):
    return EXPERIMENT.nli_ranking_inputs()


NLI = config["nli"]
# GPUs: the llm decomposer (rules runs on CPU, openai calls a server) and a Hub NLI model
# (DeBERTa-v3-large at paper scale; the demo's tiny model runs on CPU).
DECOMPOSER_GPUS = int(NLI["decomposer"]["backend"] == "llm")
NLI_GPUS = int(NLI["model"]["source"] == "hub")
