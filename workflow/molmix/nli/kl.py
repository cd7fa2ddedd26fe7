"""Robustness of NLI methods (§4.2.3, Figs. 6, 7, 10): KL divergence between coverage distributions.

For each method (atomic, full, sentence), the coverage scores of a preferred system (the paper's
SLERP+CPO) and a dispreferred one (Meditron) on the same test items are binned into ``bins``
equal-width bins over [0, 1] (the last bin includes 1.0); each bin count gets ``smoothing`` added
before normalising, so empty bins do not make the divergence infinite. The score is
KL(preferred || dispreferred) = sum_b p_b log(p_b / q_b) in nats (``scipy.stats.entropy``). KL says
how well a method separates the two systems, not in which direction, so the means of both systems
and whether the method favours the preferred one are reported beside it. Subsets of long captions
keep items whose *reference* caption has at least a threshold of words (the paper's 50 and 70),
so both systems are compared on the same items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def histogram(scores: Sequence[float], bins: int, smoothing: float) -> np.ndarray:
    """Smoothed probability of each of ``bins`` equal-width bins over [0, 1]."""
    counts, _ = np.histogram(np.clip(np.asarray(scores, dtype=float), 0.0, 1.0), bins=bins, range=(0.0, 1.0))
    smoothed = counts + smoothing
    return smoothed / smoothed.sum()


def kl_divergence(
    preferred: Sequence[float], dispreferred: Sequence[float], bins: int, smoothing: float
) -> float:
    """KL(preferred || dispreferred) of the two score histograms, in nats."""
    from scipy.stats import entropy

    if len(preferred) == 0 or len(dispreferred) == 0:
        return float("nan")
    return float(entropy(histogram(preferred, bins, smoothing), histogram(dispreferred, bins, smoothing)))


def subsets(word_counts: pd.Series, thresholds: Sequence[int]) -> dict[str, pd.Index]:
    """Item ids of every subset: all items, and those with at least each threshold of words."""
    result = {"all": word_counts.index}
    for threshold in thresholds:
        result[f">={threshold} words"] = word_counts.index[word_counts >= threshold]
    return result


def compare_methods(
    coverage: Mapping[str, Mapping[str, pd.Series]],
    preferred: str,
    dispreferred: str,
    word_counts: pd.Series,
    thresholds: Sequence[int],
    bins: int,
    smoothing: float,
) -> pd.DataFrame:
    """One row per (method, subset): n, KL, both systems' mean coverage and the favoured system.

    ``coverage[method][system]`` is a Series of per-item coverage indexed by item id; items where
    either system's coverage is undefined (NaN) are left out of that method's comparison.
    """
    rows = []
    for method, systems in coverage.items():
        both = pd.concat(
            {"preferred": systems[preferred], "dispreferred": systems[dispreferred]}, axis=1
        ).dropna()
        for subset, ids in subsets(word_counts, thresholds).items():
            items = both.loc[both.index.intersection(ids)]
            rows.append(
                {
                    "method": method,
                    "subset": subset,
                    "n": len(items),
                    "kl": kl_divergence(items["preferred"], items["dispreferred"], bins, smoothing),
                    "mean_preferred": float(items["preferred"].mean()) if len(items) else float("nan"),
                    "mean_dispreferred": float(items["dispreferred"].mean()) if len(items) else float("nan"),
                    "favours_preferred": bool(items["preferred"].mean() > items["dispreferred"].mean())
                    if len(items)
                    else False,
                }
            )
    return pd.DataFrame(rows)
