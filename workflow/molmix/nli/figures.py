"""NLI figures: score distributions (Fig. 5) and the KL comparison of NLI methods (Figs. 6, 7, 10)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molmix.figures import plt, save
from molmix.nli.baselines import coverage_range

COLOURS = ("#4477aa", "#cc6677", "#228833", "#ccbb44", "#66ccee", "#aa3377")


def score_distributions(scores: Mapping[str, pd.DataFrame], stem: str | Path) -> list[Path]:
    """Fig. 5: (A) hallucination and (B) coverage distributions of atomic-level NLI per system, and (C) the
    share of unsupported atoms (ours, beside Eq. 6's hallucination)."""
    panels = (("A", "hallucination"), ("B", "coverage"), ("C", "unsupported"))
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.4))
    for ax, (panel, column) in zip(axes, panels, strict=True):
        for colour, (system, frame) in zip(COLOURS * 4, scores.items(), strict=False):
            values = frame[column].dropna()
            ax.hist(
                values,
                bins=np.linspace(0, 1, 11),
                alpha=0.45,
                color=colour,
                label=f"{system} (mean {values.mean():.2f})",
            )
        ax.set_title(f"({panel}) {column}", fontsize=10)
        ax.set_xlabel(f"atomic-level {column}")
        ax.set_ylabel("captions")
        ax.legend(fontsize=7)
    return save(fig, stem)


def kl_comparison(
    coverage: Mapping[str, Mapping[str, pd.Series]],
    kl: pd.DataFrame,
    compare: Mapping[str, Any],
    word_counts: pd.Series,
    subset: str,
    stem: str | Path,
) -> list[Path]:
    """Figs. 6, 7, 10: preferred vs dispreferred coverage histograms per NLI method, KL in each title."""
    methods = list(kl["method"])
    fig, axes = plt.subplots(1, len(methods), figsize=(3.4 * len(methods), 3.2), squeeze=False)
    ids = (
        word_counts.index if subset == "all" else word_counts.index[word_counts >= int(subset.split()[0][2:])]
    )
    for ax, letter, method in zip(axes[0], "ABCDEF", methods, strict=False):
        row = kl[kl["method"] == method].iloc[0]
        for colour, role in zip(COLOURS[:2], ("preferred", "dispreferred"), strict=True):
            system = compare[role]
            values = coverage[method][system].reindex(ids).dropna()
            ax.hist(
                values,
                bins=np.linspace(*coverage_range(method), compare["bins"] + 1),
                alpha=0.5,
                color=colour,
                label=f"{role}: {system}",
            )
        ax.set_title(f"({letter}) {method} NLI, KL = {row['kl']:.2f} (n={row['n']})", fontsize=9)
        ax.set_xlabel("coverage (P(ent) - P(con))" if method == "summac" else "coverage")
        ax.set_ylabel("captions")
        ax.legend(fontsize=7)
    fig.suptitle(f"Coverage of preferred vs dispreferred captions ({subset})", fontsize=10)
    return save(fig, stem)
