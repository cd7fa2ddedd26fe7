"""Fréchet ChemNet Distance with fcd-torch's ChemNet and its 350-character padding.

Activations come from fcd-torch's model and one-hot encoding (``get_one_hot(smiles, 350)``, the
padding of the official environment's ``fcd`` 1.1; ``fcd`` 1.2.2 pads each list to its own longest
SMILES and gives different numbers), run in batches under ``torch.inference_mode``. The distance
itself is hand-written: fcd-torch's ``calculate_frechet_distance`` takes ``scipy.linalg.sqrtm`` of
the 512x512 covariance product (about 9 s on two cores), while only the trace of that square root
is needed, which is the sum of the square roots of the eigenvalues of ``A S2 A`` with ``A`` the
symmetric square root of ``S1``: two symmetric eigendecompositions.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PAD_LENGTH = 350
BATCH_SIZE = 256


def model_path() -> Path:
    import fcd_torch

    return Path(fcd_torch.__file__).parent / "ChemNet_v0.13_pretrained.pt"


@functools.cache
def model_sha256() -> str:
    return hashlib.sha256(model_path().read_bytes()).hexdigest()


@functools.cache
def _chemnet():
    import torch
    from fcd_torch.utils import load_imported_model

    model = load_imported_model(torch.load(model_path()))
    model.eval()
    return model


class CoreSharing:
    """``function(*args, sharing=self)``, ChemNet work, in a second thread beside RDKit work in the
    calling thread (torch releases the GIL, RDKit does not): ChemNet runs on one torch thread fewer
    until the caller's RDKit work is done, then on all of them from its next batch on, so no core
    idles while it finishes. The caller marks that point by asking for the :meth:`result`.

    Until then the interpreter's switch interval is shortened: every module call of ChemNet's
    forward pass needs the GIL back from the RDKit thread, and at Python's default 5 ms a batch
    waited longer for it than it computed (ChemNet beside RDKit 6.5 ms a molecule, alone 2.9;
    with 0.2 ms, 3.4). Use it as a context manager, which restores the interval on errors too."""

    SWITCH_INTERVAL = 2e-4

    def __init__(self, function, *args):
        import torch

        self.threads = torch.get_num_threads()
        self._main_done = threading.Event()
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(self.SWITCH_INTERVAL)
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._future = self._pool.submit(function, *args, sharing=self)

    def __enter__(self) -> CoreSharing:
        return self

    def __exit__(self, *exc) -> None:
        self._rdkit_done()
        self._pool.shutdown()

    def _rdkit_done(self) -> None:
        if not self._main_done.is_set():
            sys.setswitchinterval(self._switch_interval)
            self._main_done.set()

    def result(self):
        self._rdkit_done()
        return self._future.result()

    def chemnet_threads(self) -> int:
        return self.threads if self._main_done.is_set() else max(1, self.threads - 1)


def chemnet_activations(
    smiles: Sequence[str], batch_size: int = BATCH_SIZE, sharing: CoreSharing | None = None
) -> np.ndarray:
    """ChemNet's penultimate activations (n x 512, float32) of canonical SMILES."""
    import torch
    from fcd_torch.utils import get_one_hot

    if not len(smiles):
        return np.zeros((0, 512), dtype=np.float32)
    model = _chemnet()
    chunks = []
    with torch.inference_mode():
        for begin in range(0, len(smiles), batch_size):
            if sharing is not None:
                torch.set_num_threads(sharing.chemnet_threads())
            batch = np.stack([get_one_hot(s, PAD_LENGTH) for s in smiles[begin : begin + batch_size]])
            batch = torch.from_numpy(batch / batch.shape[2]).float()  # as fcd-torch's SmilesDataset
            chunks.append(model(batch.transpose(1, 2)).numpy())
            log.info("ChemNet activations: %d/%d", min(begin + batch_size, len(smiles)), len(smiles))
    return np.concatenate(chunks)


def gaussian(activations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of activations, as fcd-torch's ``precalc``."""
    return activations.mean(0), np.cov(activations.T)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))."""
    root = _psd_sqrt(sigma1)
    product = root @ sigma2 @ root
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def fcd(reference_activations: np.ndarray, prediction_activations: np.ndarray) -> float:
    """FCD between two activation sets; NaN when either has fewer than 2 molecules (as fcd-torch)."""
    if len(reference_activations) < 2 or len(prediction_activations) < 2:
        return float("nan")
    return frechet_distance(*gaussian(reference_activations), *gaussian(prediction_activations))
