"""Atomic-level cross-NLI (§3.3): deduplicated, cached pair scoring and the Eq. 6 / Eq. 7 pooling.

For one item with reference units P_1..P_N and generated units H_1..H_L:

- hallucination (Eq. 6) = mean over generated units j of min over reference units i of
  C[j, i] = P(contradiction | premise = P_i, hypothesis = H_j);
- coverage (Eq. 7) = mean over reference units i of max over generated units j of
  E[i, j] = P(entailment | premise = H_j, hypothesis = P_i).

Empty decompositions are defined: no generated units gives coverage 0 and hallucination NaN (the
item is counted in ``n_empty`` and left out of the hallucination mean); no reference units leaves
both NaN and flags the item (``no_reference_units``), out of both means. The same code scores the
baselines with other units (:mod:`molmix.nli.baselines`): whole texts or sentences.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from molmix.nli.cache import ParquetStore
from molmix.nli.model import LABELS, NLIModel

log = logging.getLogger(__name__)

PAIR_KEYS = ("model", "premise", "hypothesis")
ENTAILMENT, NEUTRAL, CONTRADICTION = (LABELS.index(label) for label in LABELS)
# items whose pairs are collected, deduplicated and scored together (bounds memory at paper scale)
ITEMS_PER_CHUNK = 512


def pair_store(cache_dir) -> ParquetStore:
    """The NLI probability cache: (model key, premise, hypothesis) -> P(entailment, neutral, contradiction)."""
    return ParquetStore(cache_dir, PAIR_KEYS, LABELS)


class PairScorer:
    """Probabilities of (premise, hypothesis) pairs: each distinct pair goes through the model once.

    Pairs already scored in this process, or found in the persistent ``store`` (by the model's key,
    which includes a fingerprint of its weights), are not scored again; ``pairs_scored`` counts the
    pairs the model actually saw.
    """

    def __init__(self, model: NLIModel, store: ParquetStore | None = None):
        self.model, self.store = model, store
        self.memo: dict[tuple[str, str], np.ndarray] = {}
        self.pairs_scored = 0

    def probabilities(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], np.ndarray]:
        wanted = [pair for pair in dict.fromkeys(pairs) if pair not in self.memo]
        if self.store is not None and wanted:
            cached = self.store.lookup((self.model.key, p, h) for p, h in wanted)
            for (_, p, h), values in cached.items():
                self.memo[(p, h)] = np.asarray(values, dtype=float)
            wanted = [pair for pair in wanted if pair not in self.memo]
        if wanted:
            log.info("scoring %d new pairs with %s", len(wanted), self.model.name)
            probabilities = self.model.predict(wanted, progress=True)
            self.pairs_scored += len(wanted)
            self.memo.update(zip(wanted, probabilities, strict=True))
            if self.store is not None:
                self.store.add(
                    [
                        {
                            "model": self.model.key,
                            "premise": p,
                            "hypothesis": h,
                            **dict(zip(LABELS, map(float, row), strict=True)),
                        }
                        for (p, h), row in zip(wanted, probabilities, strict=True)
                    ]
                )
        return self.memo


def matrices(
    reference: Sequence[str], generated: Sequence[str], probabilities: dict[tuple[str, str], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """C (L x N): P(contradiction | P_i, H_j) at [j, i]; E (N x L): P(entailment | H_j, P_i) at [i, j]."""
    contradiction = np.array([[probabilities[(p, h)][CONTRADICTION] for p in reference] for h in generated])
    entailment = np.array([[probabilities[(h, p)][ENTAILMENT] for h in generated] for p in reference])
    return contradiction.reshape(len(generated), len(reference)), entailment.reshape(
        len(reference), len(generated)
    )


def pool(contradiction: np.ndarray, entailment: np.ndarray) -> tuple[float, float]:
    """(hallucination, coverage) of one item from its matrices (Eqs. 6 and 7, empty cases defined)."""
    n_generated, n_reference = contradiction.shape
    if n_reference == 0:
        return float("nan"), float("nan")
    if n_generated == 0:
        return float("nan"), 0.0
    return float(contradiction.min(axis=1).mean()), float(entailment.max(axis=1).mean())


def unit_pairs(reference: Sequence[str], generated: Sequence[str]) -> Iterable[tuple[str, str]]:
    """Every pair one item needs: (P_i, H_j) for hallucination and (H_j, P_i) for coverage."""
    for p in reference:
        for h in generated:
            yield (p, h)
            yield (h, p)


def score_units(
    references: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]], scorer: PairScorer
) -> pd.DataFrame:
    """Per-item hallucination and coverage of unit lists, with the matrices and their alignments.

    Columns: ``hallucination``, ``coverage``, ``n_reference_units``, ``n_prediction_units``,
    ``no_prediction_units``, ``no_reference_units``, ``contradiction`` and ``entailment`` (the
    matrices as nested lists), ``hallucination_match`` (for each generated unit, the index of the
    reference unit attaining the min) and ``coverage_match`` (for each reference unit, the index of
    the generated unit attaining the max).
    """
    if len(references) != len(predictions):
        raise ValueError(
            f"{len(references)} reference unit lists but {len(predictions)} prediction unit lists"
        )
    rows = []
    for begin in range(0, len(references), ITEMS_PER_CHUNK):
        chunk = range(begin, min(begin + ITEMS_PER_CHUNK, len(references)))
        probabilities = scorer.probabilities(
            p for i in chunk for p in unit_pairs(references[i], predictions[i])
        )
        for i in chunk:
            contradiction, entailment = matrices(references[i], predictions[i], probabilities)
            hallucination, coverage = pool(contradiction, entailment)
            rows.append(
                {
                    "hallucination": hallucination,
                    "coverage": coverage,
                    "n_reference_units": len(references[i]),
                    "n_prediction_units": len(predictions[i]),
                    "no_prediction_units": not predictions[i],
                    "no_reference_units": not references[i],
                    "contradiction": contradiction.tolist(),
                    "entailment": entailment.tolist(),
                    "hallucination_match": contradiction.argmin(axis=1).tolist() if references[i] else [],
                    "coverage_match": entailment.argmax(axis=1).tolist() if predictions[i] else [],
                }
            )
    return pd.DataFrame(rows)


def summarize(per_item: pd.DataFrame, prefix: str = "") -> dict[str, float | int]:
    """Corpus means: NaN items (no generated / no reference units) excluded and counted."""
    hallucination = per_item[f"{prefix}hallucination"]
    coverage = per_item[f"{prefix}coverage"]
    return {
        "hallucination": float(hallucination.mean()) if hallucination.notna().any() else float("nan"),
        "coverage": float(coverage.mean()) if coverage.notna().any() else float("nan"),
        "n": len(per_item),
        "n_empty": int(per_item[f"{prefix}no_prediction_units"].sum()),
        "n_no_reference": int(per_item[f"{prefix}no_reference_units"].sum()),
    }
