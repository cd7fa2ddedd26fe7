"""Configuration: schema validation outside Snakemake and checks a JSON Schema cannot express."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from molmix.names import BASELINE_ROLES, SPLITS, TASKS

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key."""


def _filling_defaults(validator_class):
    """A validator class that fills in each property's ``default`` before validating it."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in props.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


@cache
def _validator():
    return _filling_defaults(jsonschema.Draft202012Validator)(_schema())


@cache
def _schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA.read_text())


def definition_defaults(name: str) -> dict[str, Any]:
    """The defaults of the schema's ``$defs/<name>`` (e.g. ``merge``: one merge's settings)."""
    properties = _schema()["$defs"][name]["properties"]
    return {key: copy.deepcopy(spec["default"]) for key, spec in properties.items() if "default" in spec}


def schema_defaults() -> dict[str, Any]:
    """The configuration an empty config file gets: every default of the schema (the CLIs' defaults)."""
    config: dict[str, Any] = {}
    for _ in _validator().iter_errors(config):  # validating fills in the defaults
        pass
    return config


def _explain(error: jsonschema.ValidationError) -> str:
    """The error message, plus the key's documentation for a value outside its enum."""
    hint = error.schema.get("description", "") if error.validator == "enum" else ""
    return f"{error.message} ({' '.join(hint.split())})" if hint else error.message


def validate_config(config: dict[str, Any]) -> None:
    """Validate ``config`` against the schema in place, filling defaults, run :func:`check_config`,
    then sort every mapping's keys.

    Unlike a raw jsonschema error (which prints the whole schema), the message lists each bad key
    by its dotted path, e.g. ``subsample.fraction: 1.5 is greater than the maximum of 1``. Sorting
    matters because Snakemake's params trigger compares the printed params: without it, reordering
    keys in a config file, or writing out a default, would re-run every rule below that section.
    """
    _coerce_strings(config)
    errors = sorted(_validator().iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"  {'.'.join(map(str, e.absolute_path)) or '<top level>'}: {_explain(e)}" for e in errors]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    check_config(config)
    canonical = _sorted_keys(config)
    config.clear()
    config.update(canonical)


_SCALAR_TYPES = {"number": (int, float), "integer": (int,), "boolean": (bool,), "null": (type(None),)}


def _coerce_strings(config: dict[str, Any]) -> None:
    """Read as YAML each string given where the schema wants a number, integer, boolean or null.

    ``snakemake --config 'subsample={fraction: 0.2}'`` passes nested values as strings (Snakemake
    parses them with YAML's base loader); without this, ``0.2`` is refused as not a number.
    """
    for _ in range(100):  # one pass per nesting level is enough; the bound only guards a bug
        changed = False
        for error in list(_type_errors(_validator().iter_errors(config))):
            wanted = (
                error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
            )
            if not isinstance(error.instance, str) or "string" in wanted:
                continue
            try:
                value = yaml.safe_load(error.instance)
            except yaml.YAMLError:
                continue
            if isinstance(value, bool) and "boolean" not in wanted:
                continue
            if any(isinstance(value, _SCALAR_TYPES.get(name, ())) for name in wanted):
                *parents, leaf = error.absolute_path
                target = config
                for key in parents:
                    target = target[key]
                target[leaf] = value
                changed = True
        if not changed:
            return


def _type_errors(errors) -> Any:
    for error in errors:
        if error.validator == "type" and error.absolute_path:
            yield error
        yield from _type_errors(error.context or [])


def _sorted_keys(value: Any) -> Any:
    """``value`` with the keys of every mapping in it sorted (lists keep their order)."""
    if isinstance(value, Mapping):
        return {key: _sorted_keys(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


def check_config(config: Mapping[str, Any]) -> None:
    """Cross-key checks run after schema validation (the schema has filled in defaults)."""
    source = config["dataset"]["source"]
    if source == "chebi20":
        for split in SPLITS:
            if not config["dataset"]["chebi20"].get(split):
                raise ConfigError(f"dataset.chebi20.{split}: required when dataset.source is chebi20")
    if source == "table" and not config["dataset"]["table"].get("path"):
        raise ConfigError("dataset.table.path: required when dataset.source is table")
    _check_model_references(config.get("models", {}))
    _check_merges(config)
    _check_system_references(config)
    nli = config["nli"]
    if nli["enabled"] and nli["model"]["source"] == "train" and source != "demo":
        raise ConfigError(
            f"nli.model.source: 'train' builds an NLI model from the demo dataset's facts, which "
            f"dataset.source {source!r} does not have; set nli.model.source: hub (with nli.model.id, e.g. the "
            "paper's DeBERTa-v3-large) or nli.enabled: false (scores and tables only)"
        )
    from molmix.library_settings import check_library_settings

    check_library_settings(config)
    align = config.get("align", {})
    if any("kto" in run["methods"] for run in align.get("runs", [])):
        key = "per_device_train_batch_size"
        batch = align["methods"]["kto"].get(key, align["training"].get(key))
        if batch is not None and batch < 2:
            raise ConfigError(
                f"align.methods.kto.{key}: KTO needs a per-device batch size of at least 2 (TRL estimates its KL "
                f"term from mismatched pairs inside one batch; gradient accumulation does not count) but it is "
                f"{batch}; set align.methods.kto.{key} (and gradient_accumulation_steps to keep the effective batch)"
            )


def _check_merges(config: Mapping[str, Any]) -> None:
    """Merge names are unique and no task's; every alignment init and baseline model can be resolved."""
    from molmix.merge import merge_specs, sweep_merge_name

    merges, sweep = config["merge"]["merges"], config["merge"]["ratio_sweep"]
    for i, (r1, r2) in enumerate(sweep["ratios"]):
        name = sweep_merge_name(sweep["method"], r1, r2)
        if name in merges:
            raise ConfigError(
                f"merge.ratio_sweep.ratios.{i}: ratio {r1:g}:{r2:g} gives the merge name {name!r}, which "
                "merge.merges has taken already"
            )
    names = merge_specs(config["merge"])
    for name in names:
        if name in TASKS:
            raise ConfigError(
                f"merge.merges.{name}: a merge may not be named like a task ({', '.join(TASKS)})"
            )
    for i, run in enumerate(config["align"]["runs"]):
        if run["init"] not in TASKS and run["init"] not in names:
            raise ConfigError(
                f"align.runs.{i}.init: {run['init']!r} is neither a task ({', '.join(TASKS)}) nor a merge "
                f"({', '.join(names) or 'none configured'})"
            )
    if "alignment" in config["tables"]:
        raise ConfigError(
            "tables.alignment: the name of the alignment learning table; choose another table name"
        )
    for baseline, models in config["baselines"].items():
        for task in TASKS:
            ref = models[task]
            if (
                ref not in BASELINE_ROLES
                and ref not in names
                and not Path(ref).is_dir()
                and not HUB_ID.fullmatch(ref)
            ):
                raise ConfigError(
                    f"baselines.{baseline}.{task}: {ref!r} is neither a role ({', '.join(BASELINE_ROLES)}), a merge, "
                    "an existing model folder nor a Hub id (org/name)"
                )


def aligned_name(init: str, method: str) -> str:
    """The evaluated system an alignment run makes: ``<init>+<method>``."""
    return f"{init}+{method}"


def evaluated_systems(config: Mapping[str, Any]) -> list[str]:
    """Every system generated and evaluated: the baselines, then the aligned system of each alignment run."""
    aligned = [
        aligned_name(run["init"], method) for run in config["align"]["runs"] for method in run["methods"]
    ]
    return list(config["baselines"]) + aligned


def _check_system_references(config: Mapping[str, Any]) -> None:
    """Tables and the NLI comparison may only name evaluated systems (else they fail after every model ran)."""
    systems = evaluated_systems(config)
    compare = config["nli"]["compare"]
    references = []
    if config["nli"]["enabled"]:
        references += [(f"nli.compare.{role}", compare[role]) for role in ("preferred", "dispreferred")]
        references += [(f"nli.compare.systems.{i}", name) for i, name in enumerate(compare["systems"])]
    for table, spec in config["tables"].items():
        references += [
            (f"tables.{table}.rows.{i}.system", row["system"]) for i, row in enumerate(spec["rows"])
        ]
    for key, name in references:
        if name not in systems:
            aligned = systems[len(config["baselines"]) :] or "none (align.runs is empty)"
            raise ConfigError(
                f"{key}: {name!r} is not an evaluated system; baselines are {list(config['baselines'])}, "
                f"aligned systems (<init>+<method> of align.runs) {aligned}"
            )


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def _check_model_references(models: Mapping[str, Any]) -> None:
    """Each model taken from outside (source hub) is an existing local folder or a Hub id ``org/name``.

    A mistyped local path would otherwise be sent to the Hub as an id and fail much later.
    """
    references = []
    if models.get("base", {}).get("source") == "hub":
        references.append(("models.base.id", models["base"]["id"]))
    for role in ("pertask", "negative"):
        if models.get(role, {}).get("source") == "hub":
            references += [(f"models.{role}.ids.{task}", ref) for task, ref in models[role]["ids"].items()]
    for key, ref in references:
        if not Path(ref).is_dir() and not HUB_ID.fullmatch(ref):
            raise ConfigError(f"{key}: {ref!r} is neither an existing model folder nor a Hub id (org/name)")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read, validate (filling defaults) and check a config file, as the Snakefile does."""
    with open(path) as fh:
        config = yaml.safe_load(fh) or {}
    validate_config(config)
    return config
