"""Process set-up shared by every pipeline step: logging, thread counts, seeds, devices."""

from __future__ import annotations

import logging
import os
import random
import sys
from collections.abc import Mapping
from pathlib import Path

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TOKENIZERS_PARALLELISM")
# The float kernels every x86-64 CPU with AVX2 and FMA runs alike: torch's own vectorised kernels
# (ATen), MKL's (conditional numerical reproducibility) and oneDNN's, each capped at AVX2.
PORTABLE_CPU_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
# Built by `make` from tools/mkl_intel_dispatch.c: MKL honours MKL_CBWR only on CPUs it takes for Intel.
MKL_INTEL_DISPATCH = Path(sys.prefix) / "lib" / "libmolmix_mkl_intel_dispatch.so"

log = logging.getLogger("molmix")


def user_cache_dir(name: str) -> Path:
    """The CLIs' default cache folder ``name``: under $MOLMIX_CACHE, else $XDG_CACHE_HOME or ~/.cache."""
    root = os.environ.get("MOLMIX_CACHE") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "molmix" / name


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr (which a Snakemake script has already pointed at its log file)."""
    logging.basicConfig(
        stream=sys.stderr,
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )


def configure_threads(threads: int) -> None:
    """Limit torch and BLAS to the rule's ``threads``.

    On small machines an unlimited job oversubscribes the cores of its neighbours, which made
    two-thread jobs 15-20x slower in trials. Call before importing torch where possible.
    """
    threads = max(1, int(threads))
    for name in THREAD_VARIABLES[:-1]:
        os.environ[name] = str(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # already set once in this process
            pass


def portable_cpu_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Variables that give a new process the same CPU float results on every x86-64 CPU with AVX2 and FMA.

    Left alone, torch, MKL and oneDNN each pick the widest instructions of the CPU (AVX-512 on one
    machine, AVX2 on another) and MKL picks other kernels again on AMD; their sums round differently,
    and tiny models trained for many steps amplify that into other demo numbers. Capping all three at
    AVX2, and preloading :data:`MKL_INTEL_DISPATCH` so that MKL honours the cap on AMD too, gives
    the same bytes (``tests/test_environment.py`` compares emulated Intel and AMD CPUs with this one).
    A value already in ``environ`` is kept. Other CPUs (no AVX2/FMA, ARM) get nothing: not pinned.
    """
    if not _has_avx2_fma():
        return {}
    chosen = {name: environ.get(name, value) for name, value in PORTABLE_CPU_KERNELS.items()}
    preload = environ.get("LD_PRELOAD", "")
    if (
        chosen["MKL_CBWR"] == "AVX2"
        and MKL_INTEL_DISPATCH.exists()
        and str(MKL_INTEL_DISPATCH) not in preload
    ):
        chosen["LD_PRELOAD"] = f"{preload} {MKL_INTEL_DISPATCH}".strip()
    return chosen


def pin_cpu_kernels() -> None:
    """Cap this process's CPU kernels at AVX2 (before torch's first operation; see
    :func:`portable_cpu_environment`). The MKL preload only reaches new processes: the Snakefile
    puts the whole environment into its jobs'."""
    for name, value in portable_cpu_environment().items():
        if name != "LD_PRELOAD":
            os.environ[name] = value


def _has_avx2_fma() -> bool:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return "avx2" in flags and "fma" in flags
    except OSError:
        pass
    return False


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (if installed) for deterministic CPU runs."""
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    if "torch" in sys.modules or _torch_available():
        import torch

        torch.manual_seed(seed)


def _torch_available() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("torch") is not None
    except ValueError:
        return False


def start_step(threads: int = 1, seed: int | None = None, offline: bool = True) -> None:
    """Everything a Snakemake script does before its real work (stdout joins the rule's log too).

    Steps other than downloads run with ``HF_HUB_OFFLINE=1``: they read models and data from
    ``resources/``, so a compute node without internet fails fast instead of hanging on the Hub.
    """
    sys.stdout = sys.stderr
    pin_cpu_kernels()
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    setup_logging()
    configure_threads(threads)
    if seed is not None:
        seed_everything(seed)
