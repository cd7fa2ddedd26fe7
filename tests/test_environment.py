"""The pinned environment: one lock file, mirrored exactly by the conda environment; CPU-independent numerics."""

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from conftest import REPO
from molmix.runtime import MKL_INTEL_DISPATCH, PORTABLE_CPU_KERNELS, portable_cpu_environment

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


# CPUs QEMU emulates (user mode, AVX2 and FMA since QEMU 7.2): another Intel generation and an AMD one.
EMULATED_CPUS = ("Haswell", "EPYC-Rome")


def fingerprint(environment: dict, cpu: str | None = None) -> str:
    """tests/cpu_kernels_fingerprint.py's output, on this CPU or on an emulated one."""
    script = [sys.executable, str(REPO / "tests/cpu_kernels_fingerprint.py")]
    base = {k: v for k, v in os.environ.items() if k not in PORTABLE_CPU_KERNELS and k != "LD_PRELOAD"}
    if cpu is None:
        command, env = script, {**base, **environment}
    else:
        qemu = shutil.which("qemu-x86_64")
        assert qemu, "qemu-x86_64 is missing: `make test` installs it (tools/apt_install.sh qemu-user)"
        guest = [arg for name, value in environment.items() for arg in ("-E", f"{name}={value}")]
        command, env = [qemu, "-cpu", cpu, *guest, *script], base
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split()[-1]


@pytest.mark.slow
def test_demo_numerics_are_the_same_bytes_on_other_intel_and_amd_cpus():
    """The demo's numbers must not depend on the machine (CI once failed on an AMD EPYC).

    The pipeline's jobs get runtime.portable_cpu_environment(); under it this CPU and emulated
    Intel and AMD CPUs must give the same bytes. Without the MKL preload, the AMD one differs (MKL
    ignores MKL_CBWR on non-Intel CPUs), which shows the comparison can tell them apart.
    """
    environment = portable_cpu_environment({})
    assert environment["MKL_CBWR"] == "AVX2" and str(MKL_INTEL_DISPATCH) in environment["LD_PRELOAD"]
    without_preload = {k: v for k, v in environment.items() if k != "LD_PRELOAD"}
    with ThreadPoolExecutor(2) as pool:  # QEMU emulates on one core
        here = pool.submit(fingerprint, environment)
        emulated = {cpu: pool.submit(fingerprint, environment, cpu) for cpu in EMULATED_CPUS}
        amd_without_preload = pool.submit(fingerprint, without_preload, "EPYC-Rome")
        assert {cpu: run.result() for cpu, run in emulated.items()} == dict.fromkeys(
            EMULATED_CPUS, here.result()
        )
        assert amd_without_preload.result() != here.result()


def test_setup_is_redone_until_its_last_step_succeeded(tmp_path):
    """`pip install -e` creates bin/molmix before WordNet is installed: it must not count as 'set up'."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/molmix").touch()
    planned = subprocess.run(["make", "-n", f"VENV={venv}", "venv"], cwd=REPO, capture_output=True, text=True)
    assert "tools/install_wordnet.sh" in planned.stdout and "mkl_intel_dispatch.c" in planned.stdout
    (venv / ".setup-complete").touch()
    done = subprocess.run(["make", "-n", f"VENV={venv}", "venv"], cwd=REPO, capture_output=True, text=True)
    assert "install_wordnet" not in done.stdout, done.stdout
