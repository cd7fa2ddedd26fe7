"""Atomic-level cross-NLI (§3.3): deduplicated, cached pair scoring and the Eq. 6 / Eq. 7 pooling.

For one item with reference units P_1..P_N and generated units H_1..H_L:

- hallucination (Eq. 6) = mean over generated units j of min over reference units i of
  C[j, i] = P(contradiction | premise = P_i, hypothesis = H_j);
- coverage (Eq. 7) = mean over reference units i of max over generated units j of
  E[i, j] = P(entailment | premise = H_j, hypothesis = P_i);
- unsupported (ours, beside Eq. 6) = mean over generated units j of 1 - max over reference units i of
  S[j, i] = P(entailment | premise = P_i, hypothesis = H_j): the share of generated units no reference
  unit states. The paper defines hallucination as "information not present in the reference", which
  Eq. 6 cannot see once units are atomic: a generated atom is neutral to nearly every unrelated
  reference atom, so its minimum contradiction is ~0 whatever it says. ``unsupported`` is the
  FActScore-style reading of that definition (Min et al., 2023); it needs no pairs beyond Eq. 6's.

Empty decompositions are defined: no generated units gives coverage 0 and hallucination and
unsupported NaN (the item is counted in ``n_empty`` and left out of those means); no reference units
leaves all NaN and flags the item (``no_reference_units``), out of every mean. The same code scores
the baselines with other units and, for SummaC-ZS, another pooling (:mod:`molmix.nli.baselines`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from molmix.nli.cache import ParquetStore, batch_plan
from molmix.nli.model import LABELS, NLIModel

log = logging.getLogger(__name__)

PAIR_KEYS = ("model", "batch_plan", "premise", "hypothesis")
ENTAILMENT, NEUTRAL, CONTRADICTION = (LABELS.index(label) for label in LABELS)
# items whose pairs are collected, deduplicated and scored together (bounds memory at paper scale)
ITEMS_PER_CHUNK = 512


def pair_store(cache_dir) -> ParquetStore:
    """The NLI probability cache: (model key, batch plan, premise, hypothesis) -> P(entailment, neutral,
    contradiction)."""
    return ParquetStore(cache_dir, PAIR_KEYS, LABELS)


class PairScorer:
    """Probabilities of (premise, hypothesis) pairs: each distinct pair goes through the model once.

    Pairs already scored in this process are not scored again. Each call's new pairs are scored
    together, and a persistent ``store`` is read and written under the call's batch plan (the model's
    key, which includes a fingerprint of its weights, its batch size, and the ordered list of new
    pairs; see :mod:`molmix.nli.cache`): a rerun or a resumed job finds its pairs there, and a job never
    reuses probabilities that another job computed in other batches. ``pairs_scored`` counts the pairs
    the model actually saw.
    """

    def __init__(self, model: NLIModel, store: ParquetStore | None = None):
        self.model, self.store = model, store
        self.memo: dict[tuple[str, str], np.ndarray] = {}
        self.pairs_scored = 0

    def probabilities(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], np.ndarray]:
        wanted = [pair for pair in dict.fromkeys(pairs) if pair not in self.memo]
        if not wanted:
            return self.memo
        plan = batch_plan(self.model.key, self.model.batch_size, wanted)
        if self.store is not None:
            cached = self.store.lookup((self.model.key, plan, p, h) for p, h in wanted)
            if len(cached) == len(wanted):
                self.memo.update(
                    {(p, h): np.asarray(values, dtype=float) for (_, _, p, h), values in cached.items()}
                )
                return self.memo
        log.info("scoring %d new pairs with %s", len(wanted), self.model.name)
        probabilities = self.model.predict(wanted, progress=True)
        self.pairs_scored += len(wanted)
        self.memo.update(zip(wanted, probabilities, strict=True))
        if self.store is not None:
            self.store.add(
                [
                    {
                        "model": self.model.key,
                        "batch_plan": plan,
                        "premise": p,
                        "hypothesis": h,
                        **dict(zip(LABELS, map(float, row), strict=True)),
                    }
                    for (p, h), row in zip(wanted, probabilities, strict=True)
                ]
            )
        return self.memo


class ItemMatrices(NamedTuple):
    """The probability matrices of one item (N reference units, L generated units)."""

    contradiction: np.ndarray  # L x N: P(contradiction | P_i, H_j) at [j, i] (Eq. 6)
    support: np.ndarray  # L x N: P(entailment | P_i, H_j) at [j, i] (unsupported)
    entailment: np.ndarray  # N x L: P(entailment | H_j, P_i) at [i, j] (Eq. 7)
    refutation: np.ndarray  # N x L: P(contradiction | H_j, P_i) at [i, j] (SummaC-ZS coverage)


def matrices(
    reference: Sequence[str], generated: Sequence[str], probabilities: dict[tuple[str, str], np.ndarray]
) -> ItemMatrices:
    """The :class:`ItemMatrices` of one item from the pair probabilities."""

    def matrix(hypotheses: Sequence[str], premises: Sequence[str], label: int) -> np.ndarray:
        values = [[probabilities[(p, h)][label] for p in premises] for h in hypotheses]
        return np.array(values, dtype=float).reshape(len(hypotheses), len(premises))

    return ItemMatrices(
        contradiction=matrix(generated, reference, CONTRADICTION),
        support=matrix(generated, reference, ENTAILMENT),
        entailment=matrix(reference, generated, ENTAILMENT),
        refutation=matrix(reference, generated, CONTRADICTION),
    )


def pool(contradiction: np.ndarray, entailment: np.ndarray) -> tuple[float, float]:
    """(hallucination, coverage) of one item from its matrices (Eqs. 6 and 7, empty cases defined)."""
    n_generated, n_reference = contradiction.shape
    if n_reference == 0:
        return float("nan"), float("nan")
    if n_generated == 0:
        return float("nan"), 0.0
    return float(contradiction.min(axis=1).mean()), float(entailment.max(axis=1).mean())


def unsupported(support: np.ndarray) -> float:
    """Mean over generated units of 1 - max over reference units of P(entailment | P_i, H_j)."""
    n_generated, n_reference = support.shape
    if n_reference == 0 or n_generated == 0:
        return float("nan")
    return float((1.0 - support.max(axis=1)).mean())


def summac_coverage(entailment: np.ndarray, refutation: np.ndarray) -> float:
    """SummaC-ZS's aggregation (Laban et al., 2022) read as coverage: for each reference unit, the max
    over generated units of P(entailment) - P(contradiction), averaged; in [-1, 1]."""
    n_reference, n_generated = entailment.shape
    if n_reference == 0:
        return float("nan")
    if n_generated == 0:
        return 0.0
    return float((entailment - refutation).max(axis=1).mean())


POOLINGS = ("cross", "summac")
"""``cross``: Eqs. 6-7 and unsupported; ``summac``: :func:`summac_coverage` (no hallucination score)."""


def unit_pairs(reference: Sequence[str], generated: Sequence[str]) -> Iterable[tuple[str, str]]:
    """Every pair one item needs: (P_i, H_j) for hallucination and (H_j, P_i) for coverage."""
    for p in reference:
        for h in generated:
            yield (p, h)
            yield (h, p)


def score_units(
    references: Sequence[Sequence[str]],
    predictions: Sequence[Sequence[str]],
    scorer: PairScorer,
    pooling: str = "cross",
) -> pd.DataFrame:
    """Per-item hallucination, unsupported and coverage of unit lists, with the matrices and their alignments.

    Columns: ``hallucination``, ``unsupported``, ``coverage`` (with ``pooling`` summac: coverage is
    :func:`summac_coverage`, the other two NaN), ``n_reference_units``, ``n_prediction_units``,
    ``no_prediction_units``, ``no_reference_units``, ``contradiction``, ``support`` and ``entailment``
    (the matrices as nested lists), ``hallucination_match`` (for each generated unit, the index of the
    reference unit attaining the min) and ``coverage_match`` (for each reference unit, the index of
    the generated unit attaining the max).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r} (one of {POOLINGS})")
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
            m = matrices(references[i], predictions[i], probabilities)
            if pooling == "cross":
                hallucination, coverage = pool(m.contradiction, m.entailment)
                scores = {
                    "hallucination": hallucination,
                    "unsupported": unsupported(m.support),
                    "coverage": coverage,
                }
                coverage_matrix = m.entailment
            else:
                scores = {
                    "hallucination": float("nan"),
                    "unsupported": float("nan"),
                    "coverage": summac_coverage(m.entailment, m.refutation),
                }
                coverage_matrix = m.entailment - m.refutation
            rows.append(
                {
                    **scores,
                    "n_reference_units": len(references[i]),
                    "n_prediction_units": len(predictions[i]),
                    "no_prediction_units": not predictions[i],
                    "no_reference_units": not references[i],
                    "contradiction": m.contradiction.tolist(),
                    "support": m.support.tolist(),
                    "entailment": m.entailment.tolist(),
                    "hallucination_match": m.contradiction.argmin(axis=1).tolist() if references[i] else [],
                    "coverage_match": coverage_matrix.argmax(axis=1).tolist() if predictions[i] else [],
                }
            )
    return pd.DataFrame(rows)


def summarize(per_item: pd.DataFrame, prefix: str = "") -> dict[str, float | int]:
    """Corpus means: NaN items (no generated / no reference units) excluded and counted."""

    def mean(column: str) -> float:
        values = per_item[f"{prefix}{column}"]
        return float(values.mean()) if values.notna().any() else float("nan")

    return {
        "hallucination": mean("hallucination"),
        "unsupported": mean("unsupported"),
        "coverage": mean("coverage"),
        "n": len(per_item),
        "n_empty": int(per_item[f"{prefix}no_prediction_units"].sum()),
        "n_no_reference": int(per_item[f"{prefix}no_reference_units"].sum()),
    }
