"""Configuration: schema validation outside Snakemake and checks a JSON Schema cannot express."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key."""


def check_config(config: Mapping[str, Any]) -> None:
    """Cross-key checks run after schema validation (the schema has filled in defaults)."""
    source = config["dataset"]["source"]
    if source == "chebi20":
        for split in ("train", "validation", "test"):
            if not config["dataset"]["chebi20"].get(split):
                raise ConfigError(f"dataset.chebi20.{split}: required when dataset.source is chebi20")
    if source == "table" and not config["dataset"]["table"].get("path"):
        raise ConfigError("dataset.table.path: required when dataset.source is table")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read, validate (filling defaults) and check a config file, as the Snakefile does."""
    from snakemake.utils import validate

    with open(path) as fh:
        config = yaml.safe_load(fh) or {}
    validate(config, schema=str(SCHEMA), set_default=True)
    check_config(config)
    return config
