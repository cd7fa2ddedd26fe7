"""Configuration: schema validation outside Snakemake and checks a JSON Schema cannot express."""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from molmix.names import BASELINE_ROLES, SPLITS, TASKS

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"

log = logging.getLogger(__name__)


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
    _check_moved_keys(config)
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


def _check_moved_keys(config: Mapping[str, Any]) -> None:
    """Keys that moved, named with their new place (the schema would only call them unexpected)."""
    dataset = config.get("dataset")
    lpm = dataset.get("lpm24") if isinstance(dataset, Mapping) else None
    if isinstance(lpm, Mapping) and "revision" in lpm:
        raise ConfigError(
            "dataset.lpm24.revision: moved to hub.revisions, the one place for Hub revisions: one full "
            "40-hex commit per repository, e.g. hub: {revisions: {language-plus-molecules/LPM-24_train: <commit>, "
            "language-plus-molecules/LPM-24_train-extra: <commit>}}"
        )


def check_config(config: Mapping[str, Any]) -> None:
    """Cross-key checks run after schema validation (the schema has filled in defaults)."""
    source = config["dataset"]["source"]
    if source == "chebi20":
        _check_chebi20_sources(config["dataset"]["chebi20"])
    if source == "table" and not config["dataset"]["table"].get("path"):
        raise ConfigError("dataset.table.path: required when dataset.source is table")
    _check_model_references(config.get("models", {}))
    _check_merges(config)
    _check_hub(config)
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


# ---------------------------------------------------------------------------------------------
# Files fetched by URL and the Hugging Face Hub


def is_url(location: str) -> bool:
    """A dataset location that is downloaded (``https://...``) rather than a local path."""
    return "://" in location


def _check_chebi20_sources(chebi20: Mapping[str, Any]) -> None:
    """Every split is given; a split given as a URL has its expected sha256 configured."""
    for split in SPLITS:
        location = chebi20.get(split)
        if not location:
            raise ConfigError(f"dataset.chebi20.{split}: required when dataset.source is chebi20")
        if is_url(location) and not chebi20["sha256"].get(split):
            raise ConfigError(
                f"dataset.chebi20.sha256.{split}: required because dataset.chebi20.{split} is a URL "
                f"({location}); give the file's sha256 (64 hex digits, e.g. from `sha256sum` of a trusted copy) "
                "so a changed or damaged download is caught, or use a local path (which needs none)"
            )


def _is_hub_reference(ref: str) -> bool:
    """A model reference taken from the Hub: not an existing folder, and shaped like a Hub id."""
    return not os.path.isdir(ref) and bool(HUB_ID.fullmatch(ref))


def hub_references(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every Hugging Face Hub repository the configuration fetches, in config order:
    ``{repo_id: {"repo_type": "model" | "dataset", "keys": [dotted config keys naming it]}}``.

    Models: the Hub base / per-task / negative models, external baseline models, the Hub NLI model and
    the llm decomposer's model; datasets: the L+M-24 repositories without a local snapshot. Existing
    local folders are not Hub references. (The scoring tokenizer is recorded by its content hash in
    every score summary instead.)
    """
    from molmix.merge import merge_specs

    found: dict[str, dict[str, Any]] = {}

    def add(key: str, ref: str, repo_type: str = "model") -> None:
        if _is_hub_reference(ref):
            found.setdefault(ref, {"repo_type": repo_type, "keys": []})["keys"].append(key)

    models = config["models"]
    if models["base"]["source"] == "hub":
        add("models.base.id", models["base"]["id"])
    for role in ("pertask", "negative"):
        if models[role]["source"] == "hub":
            for task, ref in models[role]["ids"].items():
                add(f"models.{role}.ids.{task}", ref)
    merges = merge_specs(config["merge"])
    for name, spec in config["baselines"].items():
        for task in TASKS:
            if spec[task] not in BASELINE_ROLES and spec[task] not in merges:
                add(f"baselines.{name}.{task}", spec[task])
    nli = config["nli"]
    if nli["enabled"]:
        if nli["model"]["source"] == "hub":
            add("nli.model.id", nli["model"]["id"])
        if nli["decomposer"]["backend"] == "llm":
            add("nli.decomposer.model", nli["decomposer"]["model"])
    dataset = config["dataset"]
    if dataset["source"] == "lpm24":
        lpm = dataset["lpm24"]
        for key in ("train_repo", "test_repo"):
            if lpm[key] not in lpm["local_dirs"]:
                add(f"dataset.lpm24.{key}", lpm[key], "dataset")
    return found


def dataset_revisions(config: Mapping[str, Any]) -> dict[str, str]:
    """Pinned commits of the dataset repositories the configuration reads, from the Hub or from a local
    snapshot in dataset.lpm24.local_dirs (whose recorded commit the download_dataset step checks)."""
    revisions = config["hub"]["revisions"]
    repos = {repo for repo, ref in hub_references(config).items() if ref["repo_type"] == "dataset"}
    if config["dataset"]["source"] == "lpm24":
        lpm24 = config["dataset"]["lpm24"]
        repos |= {lpm24["train_repo"], lpm24["test_repo"]}
    return {repo: revisions[repo] for repo in sorted(repos) if repo in revisions}


def _check_hub(config: Mapping[str, Any]) -> None:
    """trust_remote_code only for pinned Hub ids (or local folders); unpinned Hub ids are logged."""
    hub = config["hub"]
    revisions, references = hub["revisions"], hub_references(config)
    for i, entry in enumerate(hub["trust_remote_code"]):
        if os.path.isdir(entry):
            continue  # a local folder: its code is what is on disk
        if not HUB_ID.fullmatch(entry):
            raise ConfigError(
                f"hub.trust_remote_code.{i}: {entry!r} is neither an existing model folder nor a Hub id (org/name)"
            )
        if entry not in revisions:
            raise ConfigError(
                f"hub.trust_remote_code.{i}: {entry!r} may run code from its repository, so it needs a pinned "
                f"commit: add hub.revisions.{entry}: <full 40-hex commit> (the code of that commit is what runs)"
            )
        if entry not in references:
            log.warning("hub.trust_remote_code.%d: %r is not a model this configuration uses", i, entry)
    unpinned = [
        f"{repo} ({', '.join(ref['keys'])})" for repo, ref in references.items() if repo not in revisions
    ]
    if unpinned:
        log.warning(
            "hub.revisions: no pinned commit for %d Hub repositories, fetched at their current main branch: %s "
            "(python tools/pin_revisions.py CONFIG prints the block on a machine with internet)",
            len(unpinned),
            "; ".join(unpinned),
        )


def hub_loading(config: Mapping[str, Any], model: str | os.PathLike) -> dict[str, Any]:
    """How to load ``model`` with transformers: ``{"revision": str | None, "trust_remote_code": bool}``.

    ``model`` is a Hub id, the folder the download_model step made for one (``resources/models/org--name``,
    recognised by its molmix-download.json record or its name), or any local folder. ``revision`` is the
    commit pinned in ``hub.revisions`` (``None`` if unpinned or local; from_pretrained ignores it for a
    folder, whose content was fetched at that commit); ``trust_remote_code`` is whether the model is in
    ``hub.trust_remote_code``. A downloaded folder whose recorded commit is not the pinned one is a
    :class:`ConfigError` (the pin changed after the download: run the download again).
    """
    from molmix.artifacts import model_origin
    from molmix.layout import local_model_name

    hub = config["hub"]
    revisions, trusted = hub["revisions"], hub["trust_remote_code"]
    name = os.fspath(model)
    origin = model_origin(name) if os.path.isdir(name) else None
    if name in revisions or name in trusted:
        repo = name
    elif origin is not None:
        repo = origin["repo_id"]
    else:
        candidates = {*revisions, *trusted, *hub_references(config)}
        repo = next((r for r in candidates if local_model_name(r) == Path(name).name), None)
    if repo is None:  # a local folder: trusted if hub.trust_remote_code names that folder
        here = Path(name).resolve()
        trusted_folders = {Path(t).resolve() for t in trusted if os.path.isdir(t)}
        return {"revision": None, "trust_remote_code": here in trusted_folders}
    revision = revisions.get(repo)
    fetched = origin.get("commit") if origin is not None else None
    if revision is not None and fetched is not None and fetched != revision:
        raise ConfigError(
            f"{name}: downloaded at commit {fetched}, but hub.revisions pins {repo} to {revision}; "
            "download it again (snakemake -R download_model)"
        )
    return {"revision": revision, "trust_remote_code": repo in trusted}
