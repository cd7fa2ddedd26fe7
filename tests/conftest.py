"""Shared test helpers: the repository root and a Snakemake runner for DAG tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def run_snakemake(workdir: Path, *args: str, configfile: Path | None = None, check: bool = True):
    """Run Snakemake on the repository's Snakefile inside ``workdir`` (never the checkout itself)."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--workflow-profile",
        "none",
        "--configfile",
        str(configfile or REPO / "config.yaml"),
        "--cores",
        "1",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def write_config(tmp_path):
    """Write a config (the default with overrides) to a file and return its path."""

    def write(overrides: dict | None = None, base: Path = REPO / "config.yaml") -> Path:
        config = yaml.safe_load(base.read_text())
        for dotted, value in (overrides or {}).items():
            node = config
            *parents, leaf = dotted.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    return write
