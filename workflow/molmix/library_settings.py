"""Config blocks that are keyword sets of a library class, and their check against its fields.

``align.methods.dpo`` holds keyword arguments of TRL's ``DPOConfig`` under TRL's own names, passed
through as they are; ``align.lora`` those of PEFT's ``LoraConfig``, and so on (:data:`BLOCKS`). Any
field of the class may be set without code changes here; a key that is no field of it is an error
naming its dotted path, and so is a key molmix sets itself (:data:`molmix.training.PIPELINE_ARGUMENTS`).
Combinations of alignment keys that the trainer would refuse only once a run starts, or that would
keep another checkpoint than the best evaluated one, are refused too (:func:`check_alignment_evaluation`).

Importing TRL and PEFT takes seconds, and the config is validated on every Snakemake invocation, so
the field lists are read from ``library_fields.json``, written by ``tools/library_fields.py``
together with the library versions it was made from; when an installed version differs from the
recorded one, that library's classes are imported instead.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import logging
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from molmix.config import ConfigError
from molmix.training import LORA_ARGUMENTS, PIPELINE_ARGUMENTS, SFT_ARGUMENTS

log = logging.getLogger(__name__)

FIELDS_FILE = Path(__file__).with_name("library_fields.json")

CLASSES = {  # name -> (distribution, module, attribute)
    "TrainingArguments": ("transformers", "transformers", "TrainingArguments"),
    "Seq2SeqTrainingArguments": ("transformers", "transformers", "Seq2SeqTrainingArguments"),
    "BitsAndBytesConfig": ("transformers", "transformers", "BitsAndBytesConfig"),
    "SFTConfig": ("trl", "trl", "SFTConfig"),
    "DPOConfig": ("trl", "trl", "DPOConfig"),
    "CPOConfig": ("trl", "trl.experimental.cpo", "CPOConfig"),
    "KTOConfig": ("trl", "trl", "KTOConfig"),
    "LoraConfig": ("peft", "peft", "LoraConfig"),
}
METHOD_CONFIGS = {"sft": "SFTConfig", "dpo": "DPOConfig", "cpo": "CPOConfig", "kto": "KTOConfig"}
"""The TRL config class of each alignment method."""
_PAIRS_HAVE_NO_INPUT_IDS = (
    "transformers' length-grouped sampler measures input_ids, which TRL's tokenised pairs lack"
)
NOT_GROUPED_BY_LENGTH = {
    "dpo": _PAIRS_HAVE_NO_INPUT_IDS,
    "cpo": _PAIRS_HAVE_NO_INPUT_IDS,
    "kto": "TRL's KTO reads its records in order (its KL pairs are batch neighbours)",
}
"""Methods whose trainers refuse ``train_sampling_strategy: group_by_length`` once a run starts, and why."""

_SFT_OWNED = {**PIPELINE_ARGUMENTS, **SFT_ARGUMENTS}
BLOCKS: tuple[tuple[str, tuple[str, ...], Mapping[str, str]], ...] = (
    ("models.base.pretrain", ("SFTConfig",), _SFT_OWNED),
    ("models.pertask.training", ("SFTConfig",), _SFT_OWNED),
    ("models.negative.training", ("Seq2SeqTrainingArguments",), PIPELINE_ARGUMENTS),
    ("nli.model.training.arguments", ("TrainingArguments",), PIPELINE_ARGUMENTS),
    ("align.training", tuple(METHOD_CONFIGS.values()), PIPELINE_ARGUMENTS),
    *((f"align.methods.{method}", (name,), PIPELINE_ARGUMENTS) for method, name in METHOD_CONFIGS.items()),
    ("align.lora", ("LoraConfig",), LORA_ARGUMENTS),
    *((f"align.lora_by_method.{method}", ("LoraConfig",), LORA_ARGUMENTS) for method in METHOD_CONFIGS),
    ("align.quantization", ("BitsAndBytesConfig",), {}),
)
"""(dotted config path, the classes its keys must be fields of, keys molmix sets -> why)."""


def library_class(name: str) -> type:
    """Class ``name`` of :data:`CLASSES`, imported from its library."""
    _, module, attribute = CLASSES[name]
    return getattr(importlib.import_module(module), attribute)


def class_fields(name: str) -> list[str]:
    """The keyword arguments of class ``name`` of :data:`CLASSES` (its ``__init__``'s parameters,
    which for a dataclass are its init fields), read from the installed library."""
    parameters = inspect.signature(library_class(name).__init__).parameters.values()
    return sorted(
        p.name for p in parameters if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    )


def installed_versions() -> dict[str, str | None]:
    """Installed version of each library of :data:`CLASSES` (None: not installed)."""
    versions: dict[str, str | None] = {}
    for distribution, _, _ in CLASSES.values():
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[distribution] = None
    return versions


def stored_fields() -> dict[str, Any]:
    """``library_fields.json``: {"versions": {library: version}, "fields": {class: [field, ...]}}."""
    return json.loads(FIELDS_FILE.read_text())


@cache
def library_fields() -> dict[str, frozenset[str]]:
    """Each class's fields: the stored list where its library's version is the recorded one, else imported."""
    stored, installed = stored_fields(), installed_versions()
    fields = {}
    for name, (distribution, _, _) in CLASSES.items():
        recorded = stored["versions"].get(distribution)
        if installed[distribution] == recorded or installed[distribution] is None:
            if installed[distribution] is None:
                log.warning(
                    "%s is not installed: %s checked against %s %s",
                    distribution,
                    name,
                    distribution,
                    recorded,
                )
            fields[name] = frozenset(stored["fields"][name])
        else:
            log.info(
                "%s %s installed, field lists recorded from %s: importing %s (tools/library_fields.py updates them)",
                distribution,
                installed[distribution],
                recorded,
                name,
            )
            fields[name] = frozenset(class_fields(name))
    return fields


def _block(config: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    node: Any = config
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, Mapping) else None


def check_library_settings(config: Mapping[str, Any]) -> None:
    """Every key of every library block (:data:`BLOCKS`) is a field of its class(es) and not one molmix sets."""
    fields = library_fields()
    for path, classes, owned in BLOCKS:
        block = _block(config, path)
        for key in block or {}:
            if key in owned:
                raise ConfigError(f"{path}.{key}: molmix sets this itself ({owned[key]}); remove it")
            missing = [name for name in classes if key not in fields[name]]
            if not missing:
                continue
            known = set().union(*(fields[name] for name in classes))
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            if len(classes) == 1:
                raise ConfigError(f"{path}.{key}: not a {classes[0]} field{hint}")
            raise ConfigError(
                f"{path}.{key}: not a field of {', '.join(missing)} (keys here go to every method's config; "
                f"put a method's own setting under align.methods.<method>){hint}"
            )
    check_alignment_evaluation(config)


def check_alignment_evaluation(config: Mapping[str, Any]) -> None:
    """Evaluation, batch and execution settings of each method an alignment run uses (``align.training`` with
    ``align.methods.<method>`` over it), each error naming the key where the value is set.

    - ``load_best_model_at_end`` needs ``eval_strategy: steps`` (molmix saves a checkpoint every
      ``save_steps``, and transformers needs both on the same schedule) and ``eval_steps`` equal to
      ``save_steps``: transformers accepts a multiple, but a best step evaluated between two saves has
      no checkpoint, and another step would be kept.
    - KTO needs per-device batches of at least 2, for training and, when it evaluates, for evaluation:
      TRL estimates its KL term from mismatched pairs inside one batch.
    - Length-grouped batches (``train_sampling_strategy: group_by_length``) are SFT's only
      (:data:`NOT_GROUPED_BY_LENGTH`), and SFT's ``padding_free`` without ``packing`` needs
      ``max_length: null``: TRL truncates nothing then, and refuses a limit. (DPO's ``padding_free``
      TRL 1.16 switches off with a warning.)
    """
    align = config.get("align") or {}
    for method in sorted({m for run in align.get("runs", []) for m in run["methods"]}):
        own = align["methods"].get(method) or {}
        settings = {**align["training"], **own}
        strategy, steps, save = (settings.get(k) for k in ("eval_strategy", "eval_steps", "save_steps"))
        if settings.get("load_best_model_at_end"):
            if strategy != "steps":
                raise ConfigError(
                    f"{_setting(method, own, 'eval_strategy')}: load_best_model_at_end needs eval_strategy "
                    f"'steps' (molmix saves a checkpoint every save_steps) but it is {strategy!r} for {method}; "
                    "set it to steps, or load_best_model_at_end: false to keep the last step"
                )
            if steps != save:
                raise ConfigError(
                    f"{_setting(method, own, 'eval_steps')}: must equal save_steps ({save}) while "
                    f"load_best_model_at_end is true, but it is {steps} for {method}: a step evaluated "
                    "between two checkpoints cannot be the one kept"
                )
        grouped = settings.get("train_sampling_strategy") == "group_by_length"
        if grouped and method in NOT_GROUPED_BY_LENGTH:
            raise ConfigError(
                f"{_setting(method, own, 'train_sampling_strategy')}: group_by_length is not possible for "
                f"{method}: {NOT_GROUPED_BY_LENGTH[method]}; remove it (SFT only)"
            )
        padding_free = method == "sft" and settings.get("padding_free") and not settings.get("packing")
        if padding_free and settings.get("max_length") is not None:
            raise ConfigError(
                f"{_setting(method, own, 'max_length')}: SFT's padding_free without packing truncates "
                f"nothing, and TRL refuses a max_length ({settings['max_length']}); set it to null"
            )
        if method != "kto":
            continue
        keys = ["per_device_train_batch_size"] + (["per_device_eval_batch_size"] if strategy != "no" else [])
        for key in keys:
            batch = settings.get(key)
            if batch is not None and batch < 2:
                keep = (
                    " (and gradient_accumulation_steps to keep the effective batch)" if "train" in key else ""
                )
                raise ConfigError(
                    f"align.methods.kto.{key}: KTO needs a per-device batch size of at least 2 (TRL estimates "
                    f"its KL term from mismatched pairs inside one batch; gradient accumulation does not count) "
                    f"but it is {batch}; set align.methods.kto.{key}{keep}"
                )


def _setting(method: str, own: Mapping[str, Any], key: str) -> str:
    """The dotted path of ``key`` for ``method``: its own block where it sets it, else align.training."""
    return f"align.methods.{method}.{key}" if key in own else f"align.training.{key}"
