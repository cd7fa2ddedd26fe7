"""Robustness of NLI methods (§4.2.3, Figs. 6, 7, 10): KL divergence between coverage distributions.

For each method (atomic, full, sentence), the coverage scores of a preferred system (the paper's
SLERP+CPO) and a dispreferred one (Meditron) on the same test items are binned into ``bins``
equal-width bins over the method's coverage range ([0, 1]; [-1, 1] for SummaC-ZS; the last bin
includes its upper end); each bin count gets ``smoothing`` added
before normalising, so empty bins do not make the divergence infinite. The score is
KL(preferred || dispreferred) = sum_b p_b log(p_b / q_b) in nats (``scipy.stats.entropy``). KL says
how well a method separates the two systems, not in which direction, so the means of both systems
and whether the method favours the preferred one are reported beside it. Subsets of long captions
keep items whose *reference* caption has at least a threshold of words (the paper's 50 and 70),
so both systems are compared on the same items.

:func:`rank_agreement` asks the other question a metric must answer: across all systems, does its
mean coverage order them as BLEU, ROUGE and METEOR do (Spearman's rho)?
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from molmix.nli.baselines import coverage_range


def histogram(
    scores: Sequence[float], bins: int, smoothing: float, value_range: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """Smoothed probability of each of ``bins`` equal-width bins over ``value_range``."""
    low, high = value_range
    counts, _ = np.histogram(
        np.clip(np.asarray(scores, dtype=float), low, high), bins=bins, range=(low, high)
    )
    smoothed = counts + smoothing
    return smoothed / smoothed.sum()


def kl_divergence(
    preferred: Sequence[float],
    dispreferred: Sequence[float],
    bins: int,
    smoothing: float,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> float:
    """KL(preferred || dispreferred) of the two score histograms, in nats."""
    from scipy.stats import entropy

    if len(preferred) == 0 or len(dispreferred) == 0:
        return float("nan")
    return float(
        entropy(
            histogram(preferred, bins, smoothing, value_range),
            histogram(dispreferred, bins, smoothing, value_range),
        )
    )


def subsets(word_counts: pd.Series, thresholds: Sequence[int]) -> dict[str, pd.Index]:
    """Item ids of every subset: all items, and those with at least each threshold of words."""
    result = {"all": word_counts.index}
    for threshold in thresholds:
        result[f">={threshold} words"] = word_counts.index[word_counts >= threshold]
    return result


TIE = 0.001
"""Means closer than this (the precision the tables show) favour neither system."""


def favours(preferred: float, dispreferred: float) -> bool | None:
    """Whether a method's mean coverage favours the preferred system: None for a tie within :data:`TIE`
    (two means of 0.000 favour neither)."""
    if abs(preferred - dispreferred) < TIE:
        return None
    return bool(preferred > dispreferred)


def compare_methods(
    coverage: Mapping[str, Mapping[str, pd.Series]],
    preferred: str,
    dispreferred: str,
    word_counts: pd.Series,
    thresholds: Sequence[int],
    bins: int,
    smoothing: float,
) -> pd.DataFrame:
    """One row per (method, subset): n, KL, both systems' mean coverage and the favoured system
    (:func:`favours`; empty for a tie or no items).

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
                    "kl": kl_divergence(
                        items["preferred"], items["dispreferred"], bins, smoothing, coverage_range(method)
                    ),
                    "mean_preferred": float(items["preferred"].mean()) if len(items) else float("nan"),
                    "mean_dispreferred": float(items["dispreferred"].mean()) if len(items) else float("nan"),
                    "favours_preferred": favours(items["preferred"].mean(), items["dispreferred"].mean())
                    if len(items)
                    else None,
                }
            )
    return pd.DataFrame(rows)


def rank_agreement(means: pd.DataFrame, caption_metrics: pd.DataFrame) -> pd.DataFrame:
    """Whether an NLI method ranks systems as the caption metrics do: Spearman's rho, across systems,
    between each method's mean coverage and each metric (BLEU, ROUGE, METEOR).

    ``means`` has ``system``, ``method`` and ``coverage``; ``caption_metrics`` is indexed by system.
    """
    from scipy.stats import spearmanr

    rows = []
    for method, frame in means.groupby("method", sort=False):
        coverage = frame.set_index("system")["coverage"]
        for metric in caption_metrics.columns:
            both = pd.concat({"coverage": coverage, "metric": caption_metrics[metric]}, axis=1).dropna()
            rho = spearmanr(both["coverage"], both["metric"]).statistic if len(both) >= 3 else float("nan")
            rows.append({"method": method, "metric": metric, "n_systems": len(both), "spearman": float(rho)})
    return pd.DataFrame(rows, columns=["method", "metric", "n_systems", "spearman"])
