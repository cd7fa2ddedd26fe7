"""Shared test helpers: the repository root and a Snakemake runner for DAG tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest
import yaml

from molmix.runtime import pin_cpu_kernels

REPO = Path(__file__).resolve().parents[1]
TEXT_ACCURACY_BAR = 0.6
"""The demo NLI model's least balanced accuracy on held-out caption and sentence pairs (chance: 1/3)."""
BASELINE_SELF_COVERAGE_BAR = 0.9
"""The issue's least coverage of a held-out caption by itself for the full-text and sentence-level
baselines, which must also exceed their coverage of it by an unrelated caption."""
# transformers copies remote-code models' code into its modules cache, read once at import and put on
# sys.path: one folder per test session keeps it out of the user's home and the same for every test.
os.environ.setdefault("HF_MODULES_CACHE", tempfile.mkdtemp(prefix="molmix-hf-modules-"))
pin_cpu_kernels()  # before any test imports torch: the same float results as the pipeline's steps


@contextlib.contextmanager
def planned_workflow(configfile: Path, workdir: Path):
    """The Snakefile's workflow object as Snakemake plans it with ``configfile`` (no job runs)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    with SnakemakeApi() as api:
        yield api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[configfile]),
            snakefile=REPO / "Snakefile",
            workdir=workdir,
        )._workflow


def run_snakemake(
    workdir: Path,
    *args: str,
    configfile: Path | Sequence[Path] | None = None,
    check: bool = True,
    profile: str = "none",
):
    """Run Snakemake on the repository's Snakefile inside ``workdir`` (never the checkout itself), with
    ``configfile`` (one, or several layered in order; default config.yaml)."""
    configfiles = (
        [configfile] if isinstance(configfile, Path | str) else list(configfile or [REPO / "config.yaml"])
    )
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--workflow-profile",
        profile,
        "--configfile",
        *map(str, configfiles),
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


PAIRS = pd.DataFrame(
    {
        "id": ["a", "b", "c"],
        "smiles": ["C#CC(=O)O", "c1ccccc1[N+](=O)[O-]", "CC(C)Cl"],
        "caption": [
            "The molecule is an acid.",
            "The molecule is aromatic.",
            "It is an organohalogen compound.",
        ],
        "category": [None, None, None],
    }
)
ARCH = dict(
    hidden_size=16,
    intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    max_position_embeddings=256,
)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A tokenizer, a random tiny Llama base and two perturbed copies standing in for per-task models."""
    import torch

    from molmix import lm

    root = tmp_path_factory.mktemp("tiny")
    lm.train_tokenizer(lm.corpus_texts(PAIRS), 300, root / "tok")
    lm.init_causal_lm(root / "tok", ARCH, 0, root / "base")
    for task, scale in (("mol2cap", 0.01), ("cap2mol", -0.01)):
        model = lm.load_causal_lm(root / "base")
        with torch.no_grad():
            for p in model.parameters():
                p.add_(scale * torch.randn_like(p))
        model.save_pretrained(root / task)
        lm.load_tokenizer(root / "tok").save_pretrained(root / task)
    return root


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The demo as `bench/demo_run.py` runs it (`make demo`'s commands in a fresh copy of the checkout),
    once per test session: tests/test_demo.py and tests/test_nli_model.py read it."""
    directory = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [sys.executable, str(REPO / "bench/demo_run.py"), "--directory", str(directory)],
        capture_output=True,
        text=True,
    )
    log = directory / "demo_run.log"
    tail = log.read_text()[-5000:] if log.exists() else ""
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{tail}"
    print(result.stdout)
    return directory


@pytest.fixture(scope="session")
def negatives_file(tmp_path_factory):
    """A small negatives artifact in both directions."""
    from molmix.artifacts import write_artifact
    from molmix.negatives import preference_pairs

    path = tmp_path_factory.mktemp("negatives") / "pairs.parquet"
    mol2cap, _ = preference_pairs(
        PAIRS, "mol2cap", ["The molecule is a ketone.", "It is acyclic.", "x"], "t5"
    )
    cap2mol, _ = preference_pairs(PAIRS, "cap2mol", ["CCO", "C1CC1", "CC#N"], "t5")
    write_artifact(pd.concat([mol2cap, cap2mol], ignore_index=True), path, "negatives")
    return path


def assert_baselines_tell_captions_apart(captions):
    """Each baseline in ``caption_checks``' result covers a held-out caption by itself at least
    :data:`BASELINE_SELF_COVERAGE_BAR`, and more than the caption sharing the fewest facts with it does."""
    from molmix.names import NLI_BASELINES

    for method in NLI_BASELINES:
        assert captions[method]["self_coverage"] >= BASELINE_SELF_COVERAGE_BAR, method
        assert captions[method]["self_coverage"] > captions[method]["unrelated_coverage"], method
