import os
import re
import sys

# The Snakefile process imports molmix from the checkout; scripts find it through the
# workflow/scripts/molmix link (Snakemake puts the script folder on their sys.path).
sys.path.insert(0, f"{workflow.basedir}/workflow")
from molmix.config import aligned_name, evaluated_systems, validate_config
from molmix.lm import local_model_name
from molmix.merge import merge_specs
from molmix.runtime import portable_cpu_environment

# Jobs inherit this environment: the same CPU float results on every x86-64 machine with AVX2.
os.environ.update(portable_cpu_environment())

# JSON Schema validation with defaults filled in (workflow/schemas/config.schema.yaml), reporting
# each bad key by its dotted path rather than Snakemake's dump of the whole schema.
validate_config(config)

DATASET = config["dataset"]["name"]
SPLITS = ["train", "validation", "test"]
TASKS = ["mol2cap", "cap2mol"]
MODELS = config["models"]
MERGES = merge_specs(config["merge"])
ALIGNED = [
    (run["init"], method)
    for run in config["align"]["runs"]
    for method in run["methods"]
]
BASELINES = config["baselines"]


def one_of(names):
    """A wildcard constraint matching exactly these names ('.' in a name is no regex wildcard)."""
    return "|".join(map(re.escape, sorted(names))) or "NONE"


wildcard_constraints:
    dataset=one_of([DATASET]),
    split=one_of(SPLITS),
    task=one_of(TASKS),
    merge=one_of(MERGES),
    init=one_of({init for init, _ in ALIGNED}),
    method="sft|dpo|cpo|kto",


def scaled(amount):
    """A resource that grows with the attempt number (memory in MB, runtime in minutes)."""
    return lambda wildcards, attempt: amount * attempt


def hub_models():
    """Folder name under resources/models/ -> Hub id, for every model the config takes from the Hub."""
    ids = []
    if MODELS["base"]["source"] == "hub":
        ids.append(MODELS["base"]["id"])
    for role in ("pertask", "negative"):
        if MODELS[role]["source"] == "hub":
            ids += MODELS[role]["ids"].values()
    for baseline in BASELINES.values():
        ids += [
            baseline[task]
            for task in TASKS
            if baseline[task] not in ("pertask", "negative", "base", *MERGES)
        ]
    ids += nli_hub_models()
    return {local_model_name(i): i for i in ids if not os.path.isdir(i)}


def uses_hub():
    return config["dataset"]["source"] == "lpm24" or bool(hub_models())


def hub_repo_id(wildcards):
    return hub_models()[wildcards.hub_model]


def merge_spec(wildcards):
    """The configuration of one merge only, so editing it re-runs that merge alone."""
    return MERGES[wildcards.merge]


def hub_or_local(repo_id):
    """A local folder as is; a Hub id through the download_model rule's folder."""
    return (
        repo_id
        if os.path.isdir(repo_id)
        else f"resources/models/{local_model_name(repo_id)}"
    )


def base_model_dir():
    base = MODELS["base"]
    return (
        hub_or_local(base["id"])
        if base["source"] == "hub"
        else f"results/models/{DATASET}/base"
    )


def init_model_dirs():
    """The untrained base of the embedded default (the learning check's floor), else nothing."""
    return (
        [f"results/models/{DATASET}/init"]
        if MODELS["base"]["source"] == "build"
        else []
    )


def pertask_model_dir(task):
    pertask = MODELS["pertask"]
    if pertask["source"] == "hub":
        return hub_or_local(pertask["ids"][task])
    return f"results/models/{DATASET}/pertask/{task}"


def negative_model_dir(task):
    negative = MODELS["negative"]
    if negative["source"] == "hub":
        return hub_or_local(negative["ids"][task])
    return f"results/models/{DATASET}/negative/{task}"


def negative_model_for(wildcards):
    return negative_model_dir(wildcards.task)


def negative_model_name(wildcards):
    negative = MODELS["negative"]
    return (
        negative["ids"][wildcards.task]
        if negative["source"] == "hub"
        else f"tiny-t5-{wildcards.task}"
    )


def merged_model_dir(merge):
    return f"results/models/{DATASET}/merged/{merge}"


def init_model_dir(init):
    """An alignment initialisation: a per-task model (crossmodal, Tables 2-3) or a merge (Tables 4-5)."""
    if init in TASKS:
        return pertask_model_dir(init)
    if init in MERGES:
        return merged_model_dir(init)
    raise ValueError(
        f"align.runs: init {init!r} is neither a task ({TASKS}) nor a merge ({list(MERGES)})"
    )


def init_model_for(wildcards):
    return init_model_dir(wildcards.init)


def alignment_params(wildcards):
    """Only the settings one alignment run uses, so editing one method re-runs only its branch."""
    align = config["align"]
    return {
        "training": align["training"],
        "methods": {wildcards.method: align["methods"][wildcards.method]},
        "lora": align["lora"],
        "quantization": align["quantization"],
    }


def evaluated_models():
    """Names of every system generated and evaluated: baselines, then aligned models <init>+<method>."""
    return evaluated_systems(config)


def evaluated_model_path(model, task):
    if model in BASELINES:
        role = BASELINES[model][task]
        if role == "pertask":
            return pertask_model_dir(task)
        if role == "negative":
            return negative_model_dir(task)
        if role == "base":
            return base_model_dir()
        if role in MERGES:
            return merged_model_dir(role)
        return hub_or_local(role)
    init, method = model.split("+")
    return f"results/aligned/{DATASET}/{init}/{method}/model"


def evaluated_model_dirs(wildcards):
    """{<task>_model: folder} of one evaluated system."""
    return {
        f"{task}_model": evaluated_model_path(wildcards.model, task) for task in TASKS
    }


def input_prefixes(wildcards):
    """A seq2seq baseline's task prefix per direction ("" for every other system)."""
    baseline = BASELINES.get(wildcards.model, {})
    return {task: baseline.get("input_prefix", {}).get(task, "") for task in TASKS}


TABLES = list(config["tables"])


def score_summary(model, task):
    return f"results/scores/{DATASET}/{model}/{task}.json"


def table_score_files(wildcards):
    """{model__task: score summary} for every system a table names."""
    files = {}
    for spec in config["tables"].values():
        for row in spec["rows"]:
            files[f"{row['model']}__{spec['task']}"] = score_summary(
                row["model"], spec["task"]
            )
    return files


def alignment_summary_inputs(wildcards):
    """History and score summaries of every aligned system (the alignment learning table)."""
    files = {}
    for init, method in ALIGNED:
        name = aligned_name(init, method)
        files[f"history__{name}"] = (
            f"results/aligned/{wildcards.dataset}/{init}/{method}/history.parquet"
        )
        for task in TASKS:
            files[f"{name}__{task}"] = score_summary(name, task)
    return files


def ratio_sweep_models():
    """Aligned models of the Fig. 4 ablation: every <merge>+<method> whose merge uses the sweep's method."""
    method = config["figures"]["ratio_alignment"]
    sweep_method = config["merge"]["ratio_sweep"].get("method", "slerp")
    return [
        aligned_name(init, m)
        for init, m in ALIGNED
        if m == method and init in MERGES and MERGES[init]["method"] == sweep_method
    ]


def ratio_sweep_weights():
    """Fig. 4's x axis: Cap2Mol share r2/(r1+r2) of each sweep model's merge."""
    weights = {}
    for model in ratio_sweep_models():
        r1, r2 = MERGES[model.split("+")[0]]["ratio"]
        weights[model] = r2 / (r1 + r2)
    return weights


def figure_inputs(wildcards):
    inputs = {"test": f"results/data/{DATASET}/test.parquet"}
    for model in set(ratio_sweep_models()) | set(
        config["figures"]["merge_comparison"].values()
    ):
        for task in TASKS:
            inputs[f"score__{model}__{task}"] = score_summary(model, task)
    for init, method in ALIGNED:
        inputs[f"history__{aligned_name(init, method)}"] = (
            f"results/aligned/{DATASET}/{init}/{method}/history.parquet"
        )
    return inputs


NLI = config["nli"]
NLI_CACHE = "results/nli/cache"


def nli_hub_models():
    """Hub ids of the NLI model (source hub) and of the llm decomposer (none without NLI)."""
    if not NLI["enabled"]:
        return []
    ids = [NLI["model"]["id"]] if NLI["model"]["source"] == "hub" else []
    if NLI["decomposer"]["backend"] == "llm":
        ids.append(NLI["decomposer"]["model"])
    return ids


def nli_model_dir():
    if NLI["model"]["source"] == "hub":
        return hub_or_local(NLI["model"]["id"])
    return f"results/models/{DATASET}/nli"


def decomposer_model(wildcards):
    """The llm decomposer's folder (no model input for the rules and openai backends)."""
    if NLI["decomposer"]["backend"] == "llm":
        return {"decomposer": hub_or_local(NLI["decomposer"]["model"])}
    return {}


def decomposer_gpus():
    """A GPU for the llm decomposer only (rules runs on CPU; openai calls a server)."""
    return int(NLI["decomposer"]["backend"] == "llm")


def nli_gpus():
    """A GPU for a Hub NLI model (DeBERTa-v3-large at paper scale), none for the demo's tiny model."""
    return int(NLI["model"]["source"] == "hub")


def nli_systems():
    """Systems whose captions NLI evaluates (config.py checks that the compared ones are among them)."""
    return evaluated_models()


def nli_score_files(wildcards):
    """{method__system: per-item NLI scores} for every method and evaluated system."""
    return {
        f"{method}__{system}": f"results/nli/{wildcards.dataset}/{system}/{method}.parquet"
        for method in ("atomic", "full", "sentence")
        for system in nli_systems()
    }


def get_final_output():
    """Every target of the configured experiment."""
    targets = expand(
        "results/data/{dataset}/{split}.parquet", dataset=DATASET, split=SPLITS
    )
    targets += expand(
        "results/negatives/{dataset}/{task}.parquet", dataset=DATASET, task=TASKS
    )
    targets += [merged_model_dir(m) for m in MERGES]
    if MODELS["pertask"]["source"] == "train":
        targets.append(f"results/models/{DATASET}/learning_check.json")
    targets += expand(
        "results/generations/{dataset}/{model}/{task}.parquet",
        dataset=DATASET,
        model=evaluated_models(),
        task=TASKS,
    )
    targets += expand(
        "results/scores/{dataset}/{model}/{task}.json",
        dataset=DATASET,
        model=evaluated_models(),
        task=TASKS,
    )
    targets += expand(
        "results/tables/{dataset}/{table}.md", dataset=DATASET, table=TABLES
    )
    if ALIGNED:
        targets.append(f"results/tables/{DATASET}/alignment.md")
    targets.append(f"results/figures/{DATASET}")
    if NLI["enabled"]:
        targets += nli_targets()
    return targets


def nli_targets():
    """The NLI stage's outputs (nli.enabled)."""
    targets = []
    if NLI["model"]["source"] == "train":
        targets.append(f"results/models/{DATASET}/nli.metrics.json")
    # every NLI intermediate, so that a deleted one is rebuilt (Snakemake does not re-create a missing
    # input of a job whose outputs are up to date)
    targets.append(f"results/nli/{DATASET}/_reference/atoms.parquet")
    targets += expand(
        "results/nli/{dataset}/{model}/{file}",
        dataset=DATASET,
        model=nli_systems(),
        file=["atoms.parquet", "atomic.json", "full.json", "sentence.json"],
    )
    targets += [f"results/nli/{DATASET}/kl.csv", f"results/nli/{DATASET}/summary.md"]
    return targets
