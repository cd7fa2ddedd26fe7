"""The NLI baselines the paper compares against (§4.2.3): full-text and sentence-level NLI.

Both reuse the atomic pooling of :mod:`molmix.nli.atomic` with other units, so the only difference
from atomic-level cross-NLI is the granularity:

- ``full``: each text is one unit. Coverage = P(entailment | premise = whole generated caption,
  hypothesis = whole reference); hallucination = P(contradiction | premise = whole reference,
  hypothesis = whole generated caption). Pairs longer than the model's ``max_length`` tokens are
  truncated longest-sequence-first (``truncation="longest_first"``); the number of truncated pairs
  is reported (``n_truncated``).
- ``sentence`` (SummaC-ZS style, Laban et al., 2022): units are sentences (NLTK's Punkt splitter
  with its default parameters, which need no downloaded model). As in SummaC-ZS, every (document
  sentence, summary sentence) pair is scored and pooled per summary sentence, then averaged; here
  the pooling is Eqs. 6-7's: coverage = mean over reference sentences of max over generated
  sentences of P(entailment), hallucination = mean over generated sentences of min over reference
  sentences of P(contradiction). (SummaC-ZS's own score, max of P(ent) - P(con), is not used.)
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


UNITS = {"full": full_units, "sentence": sentence_units}


def baseline_units(method: str, texts: Sequence[str]) -> list[list[str]]:
    """Units of each text for a baseline method."""
    try:
        split = UNITS[method]
    except KeyError:
        raise ValueError(f"unknown NLI baseline {method!r} (one of {sorted(UNITS)})") from None
    return [split(text) for text in texts]
