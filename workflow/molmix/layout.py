"""Where every file of a run lives, and which model folder each role of a configuration resolves to.

Each output path is spelled once, here, as a pattern with Snakemake's wildcards (``{dataset}``,
``{split}``, ``{task}``, ``{merge}``, ``{init}``, ``{method}``, ``{system}``, ``{hub_model}``): the
rules use the patterns as outputs, and :class:`Experiment` fills them in for the inputs and targets
of one validated configuration. A *system* is a model pair that is generated and evaluated: a
baseline, or the aligned model ``<init>+<method>`` of an alignment run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from molmix.config import aligned_name, evaluated_systems
from molmix.merge import merge_specs
from molmix.names import CAPTION_TASK, NLI_METHODS, SPLITS, TASKS

REFERENCE = "_reference"
"""Folder of the test set's own statistics and atoms beside the systems' (no system name starts with '_')."""

# resources/: inputs fetched or built once
RAW_SPLIT = "resources/datasets/{dataset}/raw/{split}.parquet"
RAW_MANIFEST = "resources/datasets/{dataset}/raw/manifest.json"
HUB_MODEL = "resources/models/{hub_model}"

# results/data: the subsample (§4.1) and the held-out test set
SPLIT = "results/data/{dataset}/{split}.parquet"
SUBSAMPLE_SUMMARY = "results/data/{dataset}/summary.json"

# results/models: models built by the pipeline (embedded default) and the merges
TOKENIZER = "results/models/{dataset}/tokenizer"
INIT_MODEL = "results/models/{dataset}/init"
BASE_MODEL = "results/models/{dataset}/base"
BASE_HISTORY = "results/models/{dataset}/base.history.csv"
PERTASK_MODEL = "results/models/{dataset}/pertask/{task}"
PERTASK_HISTORY = "results/models/{dataset}/pertask/{task}.history.csv"
LEARNING_CHECK = "results/models/{dataset}/learning_check.json"
NEGATIVE_MODEL = "results/models/{dataset}/negative/{task}"
NEGATIVE_HISTORY = "results/models/{dataset}/negative/{task}.history.csv"
NLI_MODEL = "results/models/{dataset}/nli"
NLI_METRICS = "results/models/{dataset}/nli.metrics.json"
MERGED_MODEL = "results/models/{dataset}/merged/{merge}"

# preference pairs and alignment
PREFERENCE_SPLITS = ("train", "validation")
"""The splits made into preference pairs: train (alignment) and validation (eval_loss, best checkpoint)."""
NEGATIVES = "results/negatives/{dataset}/{split}/{task}.parquet"
NEGATIVES_SUMMARY = "results/negatives/{dataset}/{split}/{task}.json"
ALIGNED_ADAPTER = "results/aligned/{dataset}/{init}/{method}/adapter"
ALIGNED_MODEL = "results/aligned/{dataset}/{init}/{method}/model"
ALIGNED_HISTORY = "results/aligned/{dataset}/{init}/{method}/history.parquet"
ALIGNED_CURVE = "results/aligned/{dataset}/{init}/{method}/loss.png"

# evaluation
GENERATIONS = "results/generations/{dataset}/{system}/{task}.parquet"
REFERENCE_STATISTICS = "results/scores/{dataset}/" + REFERENCE + "/{task}.parquet"
SCORES = "results/scores/{dataset}/{system}/{task}.parquet"
SCORE_SUMMARY = "results/scores/{dataset}/{system}/{task}.json"
NLI_CACHE = "results/nli/cache"
REFERENCE_ATOMS = "results/nli/{dataset}/" + REFERENCE + "/atoms.parquet"
ATOMS = "results/nli/{dataset}/{system}/atoms.parquet"
NLI_SCORES = "results/nli/{dataset}/{system}/{method}.parquet"
NLI_SUMMARY = "results/nli/{dataset}/{system}/{method}.json"
KL_TABLE = "results/nli/{dataset}/kl.csv"
KL_DETAILS = "results/nli/{dataset}/kl.json"
NLI_REPORT = "results/nli/{dataset}/summary.md"
NLI_REPORT_HTML = "results/nli/{dataset}/summary.html"
NLI_RANKS = "results/nli/{dataset}/ranks.csv"
NLI_RANKS_REPORT = "results/nli/{dataset}/ranks.md"
NLI_RANKS_HTML = "results/nli/{dataset}/ranks.html"
NLI_FIGURES = "results/nli/{dataset}/figures"

# tables and figures
TABLE = "results/tables/{dataset}/{table}.{ext}"
ALIGNMENT = "alignment"
"""The alignment learning table's name beside the configured tables (which may not take it)."""
ALIGNMENT_TABLE = "results/tables/{dataset}/" + ALIGNMENT + ".md"
ALIGNMENT_CSV = "results/tables/{dataset}/" + ALIGNMENT + ".csv"
FIGURES = "results/figures/{dataset}"
EXAMPLE_FIGURES = ("examples_molecules", "examples_captions", "examples_nli")
"""The pictures of examples (Appx. K, L; :mod:`molmix.examples`) in FIGURES, each as .png and .svg:
molecules and captions of ``figures.examples.items`` test items, NLI matrices of ``nli_items``."""

SYSTEM_PATTERN = "[^_/][^/]*"
"""The ``{system}`` wildcard: never the reference folder, never a nested path."""


def local_model_name(repo_id: str) -> str:
    """Folder name under resources/models/ for a Hub id (``org/name`` -> ``org--name``)."""
    return repo_id.replace("/", "--")


class Experiment:
    """The files and models of one validated configuration (:func:`molmix.config.validate_config`)."""

    def __init__(self, config: Mapping[str, Any]):
        self.config = config
        self.dataset = config["dataset"]["name"]
        self.models = config["models"]
        self.merges = merge_specs(config["merge"])
        self.aligned = [(run["init"], method) for run in config["align"]["runs"] for method in run["methods"]]
        self.baselines = config["baselines"]
        self.systems = evaluated_systems(config)
        self.nli = config["nli"]

    def path(self, pattern: str, **wildcards: Any) -> str:
        """``pattern`` with this run's dataset and the given wildcards filled in."""
        return pattern.format(dataset=self.dataset, **wildcards)

    # models -------------------------------------------------------------------------------------

    def hub_models(self) -> dict[str, str]:
        """Folder name under resources/models/ -> Hub id, for every model the config takes from the Hub."""
        ids = []
        if self.models["base"]["source"] == "hub":
            ids.append(self.models["base"]["id"])
        for role in ("pertask", "negative"):
            if self.models[role]["source"] == "hub":
                ids += self.models[role]["ids"].values()
        for models in self.baselines.values():
            ids += [models[task] for task in TASKS if self._is_external(models[task])]
        if self.nli["enabled"]:
            if self.nli["model"]["source"] == "hub":
                ids.append(self.nli["model"]["id"])
            if self.nli["decomposer"]["backend"] == "llm":
                ids.append(self.nli["decomposer"]["model"])
        return {local_model_name(i): i for i in ids if not os.path.isdir(i)}

    def _is_external(self, model: str) -> bool:
        return model not in ("pertask", "negative", "base") and model not in self.merges

    def external_model(self, repo_id: str) -> str:
        """A local folder as is; a Hub id through the download_model rule's folder."""
        return repo_id if os.path.isdir(repo_id) else HUB_MODEL.format(hub_model=local_model_name(repo_id))

    def base_model(self) -> str:
        base = self.models["base"]
        return self.external_model(base["id"]) if base["source"] == "hub" else self.path(BASE_MODEL)

    def pertask_model(self, task: str) -> str:
        pertask = self.models["pertask"]
        if pertask["source"] == "hub":
            return self.external_model(pertask["ids"][task])
        return self.path(PERTASK_MODEL, task=task)

    def negative_model(self, task: str) -> str:
        negative = self.models["negative"]
        if negative["source"] == "hub":
            return self.external_model(negative["ids"][task])
        return self.path(NEGATIVE_MODEL, task=task)

    def negative_model_name(self, task: str) -> str:
        """The negative model as the preference pairs record it."""
        negative = self.models["negative"]
        return negative["ids"][task] if negative["source"] == "hub" else f"tiny-t5-{task}"

    def init_model(self, init: str) -> str:
        """An alignment initialisation: a per-task model (crossmodal, Tables 2-3) or a merge (Tables 4-5)."""
        return self.pertask_model(init) if init in TASKS else self.path(MERGED_MODEL, merge=init)

    def system_model(self, system: str, task: str) -> str:
        """The model folder that generates ``task`` for an evaluated system."""
        if system not in self.baselines:
            init, method = system.split("+")
            return self.path(ALIGNED_MODEL, init=init, method=method)
        model = self.baselines[system][task]
        if model == "pertask":
            return self.pertask_model(task)
        if model == "negative":
            return self.negative_model(task)
        if model == "base":
            return self.base_model()
        if model in self.merges:
            return self.path(MERGED_MODEL, merge=model)
        return self.external_model(model)

    def input_prefixes(self, system: str) -> dict[str, str]:
        """A seq2seq baseline's task prefix per direction ("" for every other system)."""
        prefixes = self.baselines.get(system, {}).get("input_prefix", {})
        return {task: prefixes.get(task, "") for task in TASKS}

    def nli_model(self) -> str:
        model = self.nli["model"]
        return self.external_model(model["id"]) if model["source"] == "hub" else self.path(NLI_MODEL)

    def decomposer_models(self) -> dict[str, str]:
        """The llm decomposer's folder (no model input for the rules and openai backends)."""
        decomposer = self.nli["decomposer"]
        return (
            {"decomposer": self.external_model(decomposer["model"])} if decomposer["backend"] == "llm" else {}
        )

    def negatives(self, split: str) -> list[str]:
        """The preference pairs of ``split`` (one of :data:`PREFERENCE_SPLITS`), both directions."""
        if split not in PREFERENCE_SPLITS:
            raise ValueError(f"no preference pairs of split {split!r}; expected one of {PREFERENCE_SPLITS}")
        return [self.path(NEGATIVES, split=split, task=task) for task in TASKS]

    # settings of one job ------------------------------------------------------------------------

    def alignment_settings(self, method: str) -> dict[str, Any]:
        """Only the settings one alignment run uses, so editing one method re-runs only its branch."""
        align = self.config["align"]
        shared = {key: value for key, value in align.items() if key not in ("runs", "methods")}
        return {**shared, "methods": {method: align["methods"][method]}}

    # inputs of the summary steps ----------------------------------------------------------------

    def table_score_files(self) -> dict[str, str]:
        """{system__task: score summary} for every system a table names."""
        return {
            f"{row['system']}__{spec['task']}": self.path(
                SCORE_SUMMARY, system=row["system"], task=spec["task"]
            )
            for spec in self.config["tables"].values()
            for row in spec["rows"]
        }

    def _history(self, init: str, method: str) -> str:
        return self.path(ALIGNED_HISTORY, init=init, method=method)

    def alignment_summary_inputs(self) -> dict[str, str]:
        """History and score summaries of every aligned system (the alignment learning table)."""
        files = {}
        for init, method in self.aligned:
            system = aligned_name(init, method)
            files[f"history__{system}"] = self._history(init, method)
            for task in TASKS:
                files[f"{system}__{task}"] = self.path(SCORE_SUMMARY, system=system, task=task)
        return files

    def ratio_sweep_systems(self) -> list[str]:
        """Aligned systems of the Fig. 4 ablation: <merge>+<method> for each merge made with the sweep's method."""
        method = self.config["figures"]["ratio_alignment"]
        sweep_method = self.config["merge"]["ratio_sweep"]["method"]
        return [
            aligned_name(init, m)
            for init, m in self.aligned
            if m == method and init in self.merges and self.merges[init]["method"] == sweep_method
        ]

    def ratio_sweep_weights(self) -> dict[str, float]:
        """Fig. 4's x axis: Cap2Mol share r2/(r1+r2) of each sweep system's merge."""
        weights = {}
        for system in self.ratio_sweep_systems():
            r1, r2 = self.merges[system.split("+")[0]]["ratio"]
            weights[system] = r2 / (r1 + r2)
        return weights

    def example_systems(self) -> list[str]:
        """The systems of the example pictures: ``figures.examples.systems``, else the evaluated ones
        of ``nli.compare.systems``, else the first four evaluated systems."""
        named = self.config["figures"]["examples"]["systems"]
        unknown = [system for system in named if system not in self.systems]
        if unknown:
            raise ValueError(
                f"figures.examples.systems: {unknown} are not evaluated systems (one of {self.systems})"
            )
        fallback = [system for system in self.nli["compare"]["systems"] if system in self.systems]
        return list(named) or fallback or self.systems[:4]

    def example_inputs(self) -> dict[str, str]:
        """The example pictures' inputs: each example system's generations of both tasks and, with
        NLI, the first one's per-item atomic NLI scores."""
        examples = self.config["figures"]["examples"]
        systems = self.example_systems() if examples["items"] else []
        inputs = {
            f"generations__{system}__{task}": self.path(GENERATIONS, system=system, task=task)
            for system in systems
            for task in TASKS
        }
        if systems and self.nli["enabled"] and examples["nli_items"]:
            inputs[f"atomic__{systems[0]}"] = self.path(NLI_SCORES, system=systems[0], method="atomic")
        return inputs

    def figure_inputs(self) -> dict[str, str]:
        inputs = {"test": self.path(SPLIT, split="test"), **self.example_inputs()}
        drawn = set(self.ratio_sweep_systems()) | set(self.config["figures"]["merge_comparison"].values())
        for system in sorted(drawn):
            for task in TASKS:
                inputs[f"score__{system}__{task}"] = self.path(SCORE_SUMMARY, system=system, task=task)
        for init, method in self.aligned:
            inputs[f"history__{aligned_name(init, method)}"] = self._history(init, method)
        return inputs

    def nli_score_files(self) -> dict[str, str]:
        """{method__system: per-item NLI scores} for every NLI method and evaluated system."""
        return {
            f"{method}__{system}": self.path(NLI_SCORES, system=system, method=method)
            for method in NLI_METHODS
            for system in self.systems
        }

    def nli_ranking_inputs(self) -> dict[str, str]:
        """{method__system: NLI summary} for every NLI method and evaluated system, and
        {score__system: caption metrics' summary} of each system."""
        inputs = {
            f"{method}__{system}": self.path(NLI_SUMMARY, system=system, method=method)
            for method in NLI_METHODS
            for system in self.systems
        }
        for system in self.systems:
            inputs[f"score__{system}"] = self.path(SCORE_SUMMARY, system=system, task=CAPTION_TASK)
        return inputs

    # targets ------------------------------------------------------------------------------------

    def targets(self) -> list[str]:
        """Every output of the configured experiment (the ``all`` rule)."""
        targets = [self.path(SPLIT, split=split) for split in SPLITS]
        targets += [path for split in PREFERENCE_SPLITS for path in self.negatives(split)]
        targets += [self.path(MERGED_MODEL, merge=merge) for merge in self.merges]
        if self.models["pertask"]["source"] == "train":
            targets.append(self.path(LEARNING_CHECK))
        for pattern in (GENERATIONS, SCORE_SUMMARY):
            targets += [self.path(pattern, system=s, task=t) for s in self.systems for t in TASKS]
        targets += [self.path(TABLE, table=table, ext="md") for table in self.config["tables"]]
        if self.aligned:
            targets.append(self.path(ALIGNMENT_TABLE))
        targets.append(self.path(FIGURES))
        if self.nli["enabled"]:
            targets += self.nli_targets()
        return targets

    def nli_targets(self) -> list[str]:
        """The NLI stage's outputs, every intermediate included: Snakemake does not re-create a missing
        input of a job whose outputs are up to date, so a deleted one is rebuilt only as a target."""
        targets = [self.path(NLI_METRICS)] if self.nli["model"]["source"] == "train" else []
        targets.append(self.path(REFERENCE_ATOMS))
        for system in self.systems:
            targets.append(self.path(ATOMS, system=system))
            targets += [self.path(NLI_SUMMARY, system=system, method=method) for method in NLI_METHODS]
        targets += [
            self.path(pattern)
            for pattern in (
                KL_TABLE,
                NLI_REPORT,
                NLI_REPORT_HTML,
                NLI_RANKS,
                NLI_RANKS_REPORT,
                NLI_RANKS_HTML,
            )
        ]
        return targets
