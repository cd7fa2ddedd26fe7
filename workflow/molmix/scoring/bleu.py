"""nltk's ``corpus_bleu`` (one reference per hypothesis, no smoothing), with faster n-gram counting.

nltk builds every n-gram through a Python generator of tuples and recounts each reference for
every order; scoring 3,300 SMILES character by character took ~3 s. Here n-grams are substrings
(for strings) or ``zip`` tuples (for token lists) counted by ``collections.Counter`` in C; the
clipped counts, the ``max(1, ...)`` denominators, the zero-overlap rule, the log-space combination
and nltk's ``brevity_penalty`` and ``SmoothingFunction().method0`` (restated below, so that SMILES
BLEU does not import nltk, whose package import alone takes ~2 s) are nltk's, so the result is the
same float. ``tests/test_scoring.py`` checks equality against nltk.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction


def ngram_counts(sequence: str | Sequence[str], n: int) -> Counter:
    if isinstance(sequence, str):
        return Counter(sequence[i : i + n] for i in range(len(sequence) - n + 1))
    return Counter(zip(*(sequence[i:] for i in range(n)), strict=False))


def brevity_penalty(reference_length: int, hypothesis_length: int) -> float:
    """nltk's ``brevity_penalty`` (with one reference, the closest reference length is its length)."""
    if hypothesis_length > reference_length:
        return 1
    if hypothesis_length == 0:
        return 0
    return math.exp(1 - reference_length / hypothesis_length)


def corpus_bleu(
    references: Sequence[str | Sequence[str]],
    hypotheses: Sequence[str | Sequence[str]],
    weights: Sequence[Sequence[float]],
) -> list[float]:
    """Corpus BLEU for each weight vector, as ``nltk.translate.bleu_score.corpus_bleu``."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    orders = max(len(w) for w in weights)
    numerators = [0] * (orders + 1)
    denominators = [0] * (orders + 1)
    hyp_length = ref_length = 0
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        for n in range(1, orders + 1):
            counts = ngram_counts(hypothesis, n)
            reference_counts = ngram_counts(reference, n)
            numerators[n] += sum(
                min(c, reference_counts[g]) for g, c in counts.items() if g in reference_counts
            )
            denominators[n] += max(1, sum(counts.values()))
        hyp_length += len(hypothesis)
        ref_length += len(reference)
    if numerators[1] == 0:
        return [0.0] * len(weights)
    penalty = brevity_penalty(ref_length, hyp_length)
    # SmoothingFunction().method0: an order without overlap counts as the smallest float
    precisions = [
        Fraction(numerators[n], denominators[n], _normalize=False) if numerators[n] else sys.float_info.min
        for n in range(1, orders + 1)
    ]
    return [
        float(
            penalty
            * math.exp(math.fsum(w * math.log(p) for w, p in zip(weight, precisions, strict=False) if p > 0))
        )
        for weight in weights
    ]
