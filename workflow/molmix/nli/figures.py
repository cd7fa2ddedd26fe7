"""NLI figures: score distributions (Fig. 5) and the KL comparison of NLI methods (Figs. 6, 7, 10).

Each system is drawn in its style from :func:`molmix.figures.system_style` (the same in every figure);
no two histograms overlap: Fig. 5 is one small panel per system and score, the KL figures put the two
systems' bars side by side in each bin, the dispreferred hatched.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molmix.figures import COLUMN_WIDTH, edge_colour, plt, save, system_style
from molmix.nli.baselines import coverage_range

PANELS = (("A", "hallucination"), ("B", "coverage"), ("C", "unsupported"))
"""Fig. 5's panels: (A) hallucination (Eq. 6), (B) coverage (Eq. 7), (C) unsupported (ours)."""


def score_distributions(scores: Mapping[str, pd.DataFrame], stem: str | Path) -> list[Path]:
    """Fig. 5: (A) hallucination and (B) coverage distributions of atomic-level NLI per system, and (C) the
    share of unsupported atoms (ours, beside Eq. 6's hallucination): a column per score, a row per
    system, each histogram in its system's colour and hatch with its mean marked."""
    panels = [(letter, column) for letter, column in PANELS if any(column in f for f in scores.values())]
    systems = list(scores)
    fig, axes = plt.subplots(
        len(systems),
        len(panels),
        figsize=(COLUMN_WIDTH / 1.6 * len(panels) + 0.8, 0.9 * len(systems) + 0.9),
        squeeze=False,
        sharex=True,
        sharey=True,
        constrained_layout=True,
    )
    bins = np.linspace(0, 1, 11)
    for row, system in enumerate(systems):
        style = system_style(system)
        for col, (letter, column) in enumerate(panels):
            ax = axes[row, col]
            values = scores[system][column].dropna() if column in scores[system] else pd.Series(dtype=float)
            ax.hist(
                values,
                bins=bins,
                color=style.colour,
                hatch=style.hatch,
                edgecolor=edge_colour(style.colour),
                linewidth=0.5,
            )
            if len(values):
                ax.axvline(values.mean(), color="black", linestyle="--", linewidth=1)
                ax.text(
                    0.98,
                    0.92,
                    f"mean {values.mean():.2f}",
                    transform=ax.transAxes,
                    ha="right",
                    va="top",
                    fontsize=6,
                )
            ax.tick_params(labelsize=6)
            if row == 0:
                ax.set_title(f"({letter}) {column}", fontsize=8)
            if row == len(systems) - 1:
                ax.set_xlabel(f"atomic-level {column}", fontsize=7)
            if col == 0:
                ax.set_ylabel(f"{system}\ncaptions", fontsize=7)
    return save(fig, stem)


def kl_comparison(
    coverage: Mapping[str, Mapping[str, pd.Series]],
    kl: pd.DataFrame,
    compare: Mapping[str, Any],
    word_counts: pd.Series,
    subset: str,
    stem: str | Path,
) -> list[Path]:
    """Figs. 6, 7, 10: preferred vs dispreferred coverage histograms per NLI method, side by side in each
    bin (dispreferred hatched), KL(preferred || dispreferred) in nats under each panel's title."""
    methods = list(kl["method"])
    columns = min(2, len(methods))
    rows = -(-len(methods) // columns)
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(COLUMN_WIDTH * columns, 2.4 * rows + 0.5),
        squeeze=False,
        constrained_layout=True,
    )
    ids = (
        word_counts.index if subset == "all" else word_counts.index[word_counts >= int(subset.split()[0][2:])]
    )
    for ax, letter, method in zip(axes.flat, "ABCDEFGH", methods, strict=False):
        row = kl[kl["method"] == method].iloc[0]
        edges = np.linspace(*coverage_range(method), compare["bins"] + 1)
        width = (edges[1] - edges[0]) * 0.42
        for offset, role in ((-0.5, "preferred"), (0.5, "dispreferred")):
            system = compare[role]
            style = system_style(system)
            values = coverage[method][system].reindex(ids).dropna()
            counts, _ = np.histogram(values, bins=edges)
            ax.bar(
                (edges[:-1] + edges[1:]) / 2 + offset * width,
                counts,
                width=width,
                color=style.colour,
                hatch="" if role == "preferred" else "////",
                edgecolor=edge_colour(style.colour),
                linewidth=0.5,
                label=f"{role}: {system}",
            )
        ax.set_title(f"({letter}) {method} NLI\nKL = {row['kl']:.2f} nats, n = {row['n']}", fontsize=8)
        ax.set_xlabel("coverage: P(ent) - P(con)" if method == "summac" else "coverage", fontsize=7)
        ax.set_ylabel("captions", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(methods) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, ncol=2, loc="outside lower center", frameon=False)
    fig.suptitle(f"Coverage of preferred vs dispreferred captions ({subset})", fontsize=9)
    return save(fig, stem)
