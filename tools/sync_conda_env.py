"""Rewrite envs/molmix.yaml from requirements.lock so the conda environment mirrors the pip pins.

Run after changing requirements.lock: `.venv/bin/python tools/sync_conda_env.py`.
tests/test_environment.py fails while the two differ.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = """\
# Conda environment for `snakemake --sdm conda`; generated from requirements.lock by
# tools/sync_conda_env.py (tests/test_environment.py fails if the two drift).
# On a GPU-less login node set CONDA_OVERRIDE_CUDA=12 before creating it, so that pip's torch
# matches the GPU nodes; molmix itself is imported from the checkout (workflow/scripts/molmix).
name: molmix
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - pip:
"""


def locked_pins(lock: Path = ROOT / "requirements.lock") -> list[str]:
    return [
        line.strip() for line in lock.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


if __name__ == "__main__":
    body = "".join(f"      - {pin}\n" for pin in locked_pins())
    (ROOT / "envs" / "molmix.yaml").write_text(HEADER + body)
