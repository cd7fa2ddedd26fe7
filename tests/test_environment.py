"""The pinned environment: one lock file, mirrored exactly by the conda environment."""

import re

import yaml

from conftest import REPO

PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)$")


def lock_pins():
    lines = [line.strip() for line in (REPO / "requirements.lock").read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_every_lock_line_is_an_exact_pin():
    bad = [line for line in lock_pins() if not PIN.match(line)]
    assert not bad, f"requirements.lock lines without an exact == pin: {bad}"


def test_core_stack_is_pinned_at_the_checked_versions():
    pins = dict(PIN.match(line).groups() for line in lock_pins())
    pins = {name.lower().replace("_", "-"): version for name, version in pins.items()}
    assert pins["torch"] == "2.13.0"
    for name in (
        "snakemake",
        "transformers",
        "peft",
        "bitsandbytes",
        "trl",
        "mergekit",
        "rdkit",
        "nltk",
        "rouge-score",
        "fcd-torch",
        "pandas",
        "pyarrow",
        "snakemake-executor-plugin-slurm",
    ):
        assert name in pins, f"{name} missing from requirements.lock"


def test_conda_environments_mirror_the_lock():
    locked = set(lock_pins())
    for env_file in sorted((REPO / "envs").glob("*.yaml")):
        env = yaml.safe_load(env_file.read_text())
        pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
        assert set(pip_section) == locked, (
            f"{env_file.name} differs from requirements.lock: run tools/sync_conda_env.py "
            f"(only in env: {sorted(set(pip_section) - locked)}, only in lock: {sorted(locked - set(pip_section))})"
        )
