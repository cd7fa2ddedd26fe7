"""Process set-up shared by every pipeline step: logging, thread counts, seeds, devices."""

from __future__ import annotations

import logging
import os
import random
import sys

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TOKENIZERS_PARALLELISM")

log = logging.getLogger("molmix")


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
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    setup_logging()
    configure_threads(threads)
    if seed is not None:
        seed_everything(seed)
