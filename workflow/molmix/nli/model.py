"""Any Hugging Face sequence-classification NLI model, with labels read from ``config.id2label``.

Models order their three classes differently: ``cross-encoder/nli-*`` use (contradiction,
entailment, neutral), ``MoritzLaurer/DeBERTa-v3-*-mnli-*`` use (entailment, neutral,
contradiction). A hard-coded index silently swaps hallucination and coverage, so the indices come
from the model's own label names and probabilities are returned in one fixed order,
:data:`LABELS`. Pairs are scored in length-sorted, padded batches under ``torch.inference_mode()``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

log = logging.getLogger(__name__)

LABELS = ("entailment", "neutral", "contradiction")
# label-name prefixes accepted for each class (lower-cased): "ENTAILMENT", "entail", "CONTRADICTION", ...
LABEL_PREFIXES = {"entailment": ("entail",), "neutral": ("neutral",), "contradiction": ("contradict",)}


class NLIModelError(ValueError):
    """A model whose labels cannot be mapped onto entailment / neutral / contradiction."""


def label_indices(id2label: dict, source: str) -> dict[str, int]:
    """Index of each of :data:`LABELS` in a model's logits, from its ``id2label``."""
    indices: dict[str, int] = {}
    for index, name in id2label.items():
        lowered = str(name).lower()
        for label, prefixes in LABEL_PREFIXES.items():
            if lowered.startswith(prefixes):
                if label in indices:
                    raise NLIModelError(f"{source}: id2label names {label} twice ({id2label})")
                indices[label] = int(index)
    missing = [label for label in LABELS if label not in indices]
    if missing:
        raise NLIModelError(
            f"{source}: id2label {id2label} has no {missing} class; an NLI model needs entailment, "
            "neutral and contradiction labels (generic names such as LABEL_0 cannot be mapped safely)"
        )
    return indices


def model_fingerprint(path: str | Path) -> str:
    """A short hash of a local model folder's config and weights (the NLI cache key of a model).

    A folder retrained in place gets a new fingerprint, so stale cached probabilities are never reused.
    """
    folder = Path(path)
    digest = hashlib.sha256()
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) + [folder / "config.json"]
    for file in files:
        if file.exists():
            digest.update(file.name.encode())
            with open(file, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 24), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


class NLIModel:
    """A sequence-classification NLI model: ``predict(pairs)`` gives P(entailment, neutral, contradiction)."""

    def __init__(
        self, name_or_path: str | Path, max_length: int = 512, batch_size: int = 64, device: str | None = None
    ):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.name = str(name_or_path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.name.startswith(("/", ".", "~")) and not Path(self.name).expanduser().is_dir():
            raise NLIModelError(f"{self.name}: no such model folder")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.name)
            self.model = AutoModelForSequenceClassification.from_pretrained(self.name).to(self.device).eval()
        except (OSError, ValueError) as err:  # not a model folder, unknown id, no network
            raise NLIModelError(
                f"{self.name}: cannot be loaded as a sequence-classification NLI model ({err})"
            ) from None
        self.indices = label_indices(self.model.config.id2label, self.name)
        self.order = [self.indices[label] for label in LABELS]
        self.max_length = min(
            max_length, getattr(self.tokenizer, "model_max_length", max_length) or max_length
        )
        self.batch_size = batch_size
        self.forward_passes = 0
        folder = Path(self.name)
        self.key = f"{folder.name}@{model_fingerprint(folder)}" if folder.is_dir() else self.name
        self.key += f"|max_length={self.max_length}"
        log.info("NLI model %s on %s, labels %s", self.name, self.device, self.indices)

    def truncated(self, premise: str, hypothesis: str) -> bool:
        """Whether the pair is longer than ``max_length`` tokens (and so truncated when scored)."""
        return len(self.tokenizer(premise, hypothesis)["input_ids"]) > self.max_length

    def predict(self, pairs: Sequence[tuple[str, str]], progress: bool = False) -> np.ndarray:
        """An (n, 3) array of probabilities in :data:`LABELS` order for (premise, hypothesis) pairs.

        Pairs are sorted by length so each padded batch holds similar lengths; longer pairs are
        truncated to ``max_length`` tokens, longest sequence first.
        """
        import torch

        probabilities = np.zeros((len(pairs), len(LABELS)))
        if not pairs:
            return probabilities
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        batches = range(0, len(order), self.batch_size)
        for begin in tqdm(batches, desc="nli", disable=not progress, mininterval=5):
            chosen = order[begin : begin + self.batch_size]
            inputs = self.tokenizer(
                [pairs[i][0] for i in chosen],
                [pairs[i][1] for i in chosen],
                padding=True,
                truncation="longest_first",
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                logits = self.model(**inputs).logits.float()
            self.forward_passes += 1
            probabilities[chosen] = torch.softmax(logits, dim=-1)[:, self.order].cpu().double().numpy()
        return probabilities
