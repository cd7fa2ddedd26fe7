"""The NLI baselines the paper compares against (§4.2.3, Fig. 6 B-D): full-text and two sentence-level NLIs.

Each reuses :func:`molmix.nli.atomic.score_units` with other units, so the difference from atomic-level
cross-NLI is the granularity and, for SummaC-ZS, the pooling:

- ``full`` (Fig. 6 B): each text is one unit. Coverage = P(entailment | premise = whole generated
  caption, hypothesis = whole reference); hallucination = P(contradiction | premise = whole reference,
  hypothesis = whole generated caption). Pairs longer than the model's ``max_length`` tokens are
  truncated longest-sequence-first (``truncation="longest_first"``); the number of truncated pairs
  is reported (``n_truncated``).
- ``sentence`` (Fig. 6 C): units are sentences (NLTK's Punkt splitter with its default parameters,
  which need no downloaded model), pooled by Eqs. 6-7 as the atoms are.
- ``summac`` (Fig. 6 D): the same sentences, pooled as SummaC-ZS pools them (Laban et al., 2022): for
  each hypothesis sentence, the max over premise sentences of P(entailment) - P(contradiction),
  averaged. Read as coverage (hypotheses = reference sentences, premises = generated ones), it lies in
  [-1, 1] (:data:`COVERAGE_RANGE`); SummaC-ZS has no hallucination score, so those columns are NaN.
"""

from __future__ import annotations

from collections.abc import Sequence


def full_units(text: str) -> list[str]:
    """The whole text as one unit (none if it is blank)."""
    text = " ".join(text.split())
    return [text] if text else []


def sentence_units(text: str) -> list[str]:
    """The sentences of a text (NLTK Punkt with default parameters)."""
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return [s.strip() for s in PunktSentenceTokenizer().tokenize(" ".join(text.split())) if s.strip()]


UNITS = {"full": full_units, "sentence": sentence_units, "summac": sentence_units}
POOLING = {"full": "cross", "sentence": "cross", "summac": "summac"}
COVERAGE_RANGE = {"summac": (-1.0, 1.0)}
"""Coverage ranges other than [0, 1], by method (histograms and KL bins span the range)."""


def coverage_range(method: str) -> tuple[float, float]:
    """The interval a method's coverage lies in."""
    return COVERAGE_RANGE.get(method, (0.0, 1.0))


def baseline_units(method: str, texts: Sequence[str]) -> list[list[str]]:
    """Units of each text for a baseline method."""
    try:
        split = UNITS[method]
    except KeyError:
        raise ValueError(f"unknown NLI baseline {method!r} (one of {sorted(UNITS)})") from None
    return [split(text) for text in texts]
