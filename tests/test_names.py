"""The schema documents the names molmix.names defines: its enums must be exactly those names."""

from __future__ import annotations

import pytest

from molmix import names
from molmix.config import _schema
from molmix.nli.decompose import BACKENDS
from molmix.scoring.molecules import CONVENTIONS


def at(path: str):
    """The schema node at a dotted path (``$defs.merge`` or ``properties`` steps left out)."""
    node = _schema()
    for key in path.split("."):
        node = node[key] if key in node else node["properties"][key]
    return node


@pytest.mark.parametrize(
    "path, expected",
    [
        ("tables.additionalProperties.task", names.TASKS),
        ("align.runs.items.methods.items", names.ALIGN_METHODS),
        ("figures.ratio_alignment", names.ALIGN_METHODS),
        ("generate.postprocess_smiles.first_token_methods.items", names.ALIGN_METHODS),
        ("$defs.merge.method", names.MERGE_METHODS),
        ("merge.ratio_sweep.method", names.MERGE_METHODS),
        ("score.invalid_smiles", CONVENTIONS),
        ("nli.decomposer.backend", BACKENDS),
    ],
)
def test_schema_enums_are_the_names_the_code_defines(path, expected):
    assert tuple(at(path)["enum"]) == tuple(expected)


def test_per_task_settings_name_every_task_and_only_those():
    for path in ("models.pertask.ids", "models.negative.ids", "baselines.additionalProperties"):
        assert set(at(path)["properties"]) - {"input_prefix"} == set(names.TASKS), path
    assert set(at("baselines.additionalProperties.input_prefix")["properties"]) == set(names.TASKS)
    assert set(at("align.lora_by_method")["properties"]) == set(names.ALIGN_METHODS)


def test_an_unknown_task_is_named_in_the_error():
    with pytest.raises(names.UnknownName, match="'smiles2caption'.*mol2cap"):
        names.check_task("smiles2caption")


def test_every_per_name_table_covers_exactly_the_names():
    from molmix import align, library_settings, prompts, tables
    from molmix.nli import baselines
    from molmix.scoring import core

    assert set(align.TRAINERS) == set(library_settings.METHOD_CONFIGS) == set(names.ALIGN_METHODS)
    assert set(baselines.UNITS) == set(baselines.POOLING) == set(names.NLI_BASELINES)
    for table in (prompts.INSTRUCTIONS, prompts.INPUTS, core.SUMMARY_KEYS, tables.METRICS):
        assert set(table) == set(names.TASKS)
