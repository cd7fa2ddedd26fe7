"""The model card (``README.md``) in every model folder the pipeline writes.

A card says what the model is, what it was made from (base models), on which data (dataset, split,
n), how (method and the config block that set it, as YAML, and the seed), where its scores are and
which library versions made it. It is a Hugging Face model card: :class:`huggingface_hub.ModelCard`
with :class:`huggingface_hub.ModelCardData` metadata under the Hub's own field names (``base_model``,
``base_model_relation``, ``datasets``, ``library_name``, ``pipeline_tag``, ``tags``), so the folder can be
pushed to the Hub as it is.

Each step that writes a model folder describes it in a :class:`Card` and calls :func:`write_card` on
the work folder before it is moved into place (:func:`molmix.artifacts.atomic_directory`), so a
model folder never exists without its card. A card holds nothing time-dependent and no path of the
work folder: the same step on the same inputs writes the same bytes. Most scores are computed later
by other rules; the card names their files (:func:`score_files`, from :mod:`molmix.layout`'s
patterns), and gives only the numbers known when the model is saved (the training log's last loss,
the validation loss of the kept checkpoint).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

CARD_FILE = "README.md"
PAPER = (
    "Less for More: Enhanced Feedback-aligned Mixed LLMs for Molecule Caption Generation and "
    "Fine-Grained NLI Evaluation (Gkoumas and Liakata)"
)
PLACEHOLDERS = {
    "system": "each evaluated system that generates with this model (see the config's baselines and "
    "alignment runs)",
    "method": "each NLI method",
    "table": "each table",
}
"""The wildcards :func:`score_files` leaves in its paths, and what they stand for."""
RELATIONS = {"finetune": "fine-tuned from", "adapter": "an adapter of", "merge": "a merge of"}
"""The Hub's ``base_model_relation`` values a card uses, as its text says them."""
TAGS = ("molmix", "chemistry", "molecule-captioning")
"""Tags of every card; a :class:`Card` adds its own."""


@dataclass(frozen=True)
class Data:
    """A data file a model was trained on: ``n`` rows (records, pairs) of ``split`` of ``dataset``.

    :func:`data_file` fills ``dataset``, ``split`` and ``n`` from the path and the file.
    """

    path: str | None = None
    n: int | None = None
    dataset: str | None = None
    split: str | None = None
    what: str = ""
    hub_dataset: str | None = None
    """The Hub dataset repository the file was read from, if any (the card's ``datasets``)."""


@dataclass(frozen=True)
class Card:
    """What a model card says; :func:`render` writes it. Empty fields are left out of the card."""

    what: str = ""
    """What the model is, in a sentence or two."""
    base_models: Sequence[str] = ()
    """The model folders (or Hub ids) it was made from."""
    relation: str | None = None
    """How it relates to them, in the Hub's ``base_model_relation`` terms: finetune, adapter, merge."""
    data: Sequence[Data] = ()
    method: str = ""
    """How it was made (trainer, loss, merge method)."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """The config block that set the method, written as YAML."""
    seed: int | None = None
    results: Mapping[str, Any] = field(default_factory=dict)
    """Scores known when the model is saved (name -> value)."""
    scores: Mapping[str, str] = field(default_factory=dict)
    """Files other rules write the model's scores to (path -> what it holds); :func:`score_files` adds
    those the model folder's place in :mod:`molmix.layout` implies."""
    library_name: str = ""
    """The Hub's ``library_name``: transformers unless set (peft for an adapter)."""
    pipeline_tag: str = ""
    """The Hub's ``pipeline_tag``: text-generation unless set."""
    tags: Sequence[str] = ()

    def with_defaults(self, **defaults: Any) -> Card:
        """This card with each empty field among ``defaults`` set to the given value (set fields win)."""
        known = {f.name for f in fields(self)}
        unknown = set(defaults) - known
        if unknown:
            raise TypeError(f"not fields of a model card: {sorted(unknown)}")
        return replace(self, **{k: v for k, v in defaults.items() if not getattr(self, k)})


def wildcards(pattern: str, path: str | Path) -> dict[str, str] | None:
    """The wildcards of ``path`` as an instance of the :mod:`molmix.layout` ``pattern`` (the path may
    lie below another working directory), or ``None`` if it is none."""
    parts = re.split(r"\{(\w+)\}", pattern)
    regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts))
    found = re.search(rf"(?:^|/){regex}$", Path(path).as_posix().rstrip("/"))
    return found.groupdict() if found else None


def data_file(path: str | Path, n: int | None = None, what: str = "") -> Data:
    """A :class:`Data` of a Parquet artifact: dataset and split from its place in :mod:`molmix.layout`,
    ``n`` its rows unless given, and the Hub dataset it came from (its provenance's ``origin``)."""
    import pyarrow.parquet as pq

    from molmix import layout
    from molmix.artifacts import read_metadata

    found = {}
    for pattern in (layout.RAW_SPLIT, layout.SPLIT, layout.NEGATIVES):
        found = wildcards(pattern, path) or {}
        if found:
            break
    hub = None
    if Path(path).is_file():
        n = pq.ParquetFile(path).metadata.num_rows if n is None else n
        origin = read_metadata(path).get("origin")
        hub = origin.get("repo") if isinstance(origin, dict) else None
    return Data(str(path), n, found.get("dataset"), found.get("split"), what, hub)


def score_files(model_dir: str | Path) -> dict[str, str]:
    """Where other rules write the scores of the model in ``model_dir``, from its place in :mod:`molmix.layout`
    (``{system}``: each evaluated system that generates with it); empty for a folder outside the layout."""
    from molmix import layout
    from molmix.config import aligned_name
    from molmix.names import CAPTION_TASK, TASKS

    def systems(dataset: str, system: str = "{system}") -> dict[str, str]:
        files = {
            layout.SCORE_SUMMARY.format(dataset=dataset, system=system, task=task): f"{task} metrics"
            for task in TASKS
        }
        nli = layout.NLI_SUMMARY.format(dataset=dataset, system=system, method="{method}")
        files[nli] = f"hallucination and coverage of its {CAPTION_TASK} captions, per NLI method"
        files[layout.TABLE.format(dataset=dataset, table="{table}", ext="md")] = "the tables that name it"
        return files

    if found := wildcards(layout.ALIGNED_MODEL, model_dir) or wildcards(layout.ALIGNED_ADAPTER, model_dir):
        dataset, init, method = found["dataset"], found["init"], found["method"]
        return {
            layout.ALIGNED_HISTORY.format(**found): "training log: loss and validation eval_loss by step",
            **systems(dataset, aligned_name(init, method)),
            layout.ALIGNMENT_TABLE.format(dataset=dataset): "the alignment learning table",
        }
    if found := wildcards(layout.NEGATIVE_MODEL, model_dir):
        return {
            layout.NEGATIVES_SUMMARY.format(split=split, **found): f"its {split} outputs (rejected answers)"
            for split in layout.PREFERENCE_SPLITS
        } | systems(found["dataset"])
    if found := wildcards(layout.NLI_MODEL, model_dir):
        return {layout.NLI_METRICS.format(**found): "held-out accuracy (written by the same step)"}
    for pattern in (layout.BASE_MODEL, layout.PERTASK_MODEL):
        if found := wildcards(pattern, model_dir):
            check = layout.LEARNING_CHECK.format(dataset=found["dataset"])
            return {check: "whether per-task training learnt (vs. the base)"} | systems(found["dataset"])
    if found := wildcards(layout.MERGED_MODEL, model_dir):
        return systems(found["dataset"])
    return {}


def training_results(trainer: Any) -> dict[str, Any]:
    """Scores a trainer knows when its model is saved: the last logged training loss and evaluation
    loss, and with ``load_best_model_at_end`` the kept checkpoint's metric. Only the per-step log
    entries are read (the run summary holds timings, and a resumed run's loss of its own steps)."""
    state, args = trainer.state, trainer.args
    results: dict[str, Any] = {}
    for key, name in (("loss", "training loss"), ("eval_loss", "validation loss")):
        logged = [e for e in state.log_history if key in e and "step" in e]
        if logged:
            results[f"{name} (last logged, step {logged[-1]['step']})"] = logged[-1][key]
    best = getattr(state, "best_model_checkpoint", None)
    if getattr(args, "load_best_model_at_end", False) and best and state.best_metric is not None:
        step = Path(best).name.removeprefix("checkpoint-")
        results[f"best {args.metric_for_best_model} (the kept checkpoint, step {step})"] = state.best_metric
    return results


def _origin(model: str) -> tuple[str | None, str]:
    """A base model's Hub id (if it came from the Hub) and how the card describes it."""
    from molmix.artifacts import model_origin

    folder = Path(model)
    origin = model_origin(folder) if folder.is_dir() else None
    if origin is None:
        built = ", built by the pipeline: its README.md is its card" if (folder / CARD_FILE).is_file() else ""
        return None, f"`{model}`{built}"
    commit = origin.get("commit") or origin.get("revision") or "main"
    return origin["repo_id"], f"`{model}`: Hugging Face Hub `{origin['repo_id']}` at `{commit}`"


def _value(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return str(value)


def _yaml(settings: Mapping[str, Any]) -> str:
    plain = json.loads(json.dumps(settings, default=str))  # Snakemake's containers, tuples, paths
    return yaml.safe_dump(plain, sort_keys=True, default_flow_style=False, allow_unicode=True)


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return lines


def render(card: Card, model_dir: str | Path):
    """The :class:`huggingface_hub.ModelCard` of ``card`` for the folder ``model_dir`` (its final path,
    whose place in :mod:`molmix.layout` adds :func:`score_files`)."""
    from huggingface_hub import ModelCard, ModelCardData

    from molmix.artifacts import package_versions

    origins = [_origin(str(model)) for model in card.base_models]
    hub_models = [hub for hub, _ in origins if hub]
    hub_data = sorted({d.hub_dataset for d in card.data if d.hub_dataset})
    metadata = ModelCardData(
        base_model=hub_models or None,
        datasets=hub_data or None,
        library_name=card.library_name or "transformers",
        pipeline_tag=card.pipeline_tag or "text-generation",
        tags=list(dict.fromkeys([*TAGS, *card.tags])),
        **({"base_model_relation": card.relation} if hub_models and card.relation else {}),
    )
    lines = [f"# {Path(model_dir).as_posix().rstrip('/')}", "", card.what, ""]
    lines += [f"Written by molmix, the pipeline reproducing *{PAPER}*.", ""]
    lines += ["## Base model", ""]
    if origins:
        if card.relation:
            lines += [f"This model is {RELATIONS.get(card.relation, card.relation)}:", ""]
        lines += [f"- {described}" for _, described in origins]
    else:
        lines.append("None: trained from randomly initialised weights.")
    lines += ["", "## Data", ""]
    if card.data:
        rows = [(d.dataset, d.split, d.n, d.what, f"`{d.path}`" if d.path else None) for d in card.data]
        lines += _table(("dataset", "split", "n", "what", "file"), rows)
    else:
        lines.append("None: no training data.")
    lines += ["", "## Method", "", card.method, ""]
    if card.seed is not None:
        lines += [f"Seed: {card.seed}", ""]
    if card.settings:
        lines += ["Settings (the config block):", "", "```yaml", _yaml(card.settings).rstrip(), "```", ""]
    lines += ["## Scores", ""]
    if card.results:
        lines += ["Known when the model was saved:", ""]
        lines += _table(("score", "value"), [(k, _value(v)) for k, v in card.results.items()])
        lines.append("")
    scores = {**card.scores, **score_files(model_dir)}
    if scores:
        lines += ["Written beside the model, or by later steps of the pipeline, to:", ""]
        lines += [f"- `{path}`: {what}" for path, what in scores.items()]
        named = [name for name in PLACEHOLDERS if any(f"{{{name}}}" in path for path in scores)]
        if named:
            lines += ["", "; ".join(f"`{{{name}}}`: {PLACEHOLDERS[name]}" for name in named) + "."]
    elif not card.results:
        lines.append("None recorded.")
    lines += ["", "## Library versions", ""]
    lines += _table(("package", "version"), sorted(package_versions().items()))
    return ModelCard(f"---\n{metadata.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")


def write_card(folder: str | Path, card: Card, model_dir: str | Path) -> Path:
    """Write ``card`` as ``README.md`` into ``folder``: the work folder of the model folder ``model_dir``,
    before it is moved into place (the card names ``model_dir``, never the work folder). Returns its path."""
    path = Path(folder) / CARD_FILE
    render(card, model_dir).save(path)
    return path
