"""The paper's figures from pipeline outputs (matplotlib, PNG + SVG).

Fig. 4: metrics against the Mol2Cap:Cap2Mol mixing ratio; Fig. 8: SLERP / TIES against the model
soup; Fig. 9: caption word counts; training loss curves per alignment method. Each function takes
plain frames or dicts, so it can be called on any run's outputs. A system that was not run (a score
summary that says ``failed``) is left out of the figures, with a line in the log.

Every figure is drawn to be read in greyscale and at column width: series differ by marker, line
style or hatch as well as by colour, and a system is drawn in the same style in every figure
(:func:`system_style`, used here and by :mod:`molmix.nli.figures` and :mod:`molmix.examples`).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from molmix.artifacts import atomic_path  # noqa: E402
from molmix.names import ALIGN_METHODS, CAPTION_TASK, TASKS  # noqa: E402
from molmix.tables import METRICS  # noqa: E402

log = logging.getLogger(__name__)

COLUMN_WIDTH = 3.5
"""Inches: one column of a two-column paper; a figure is this wide, or twice it (both columns)."""

# colour-blind-safe colours from Paul Tol's "bright" and "muted" schemes, then near black and grey
PALETTE = (
    "#4477AA",  # blue
    "#EE6677",  # red
    "#228833",  # green
    "#CCBB44",  # yellow
    "#66CCEE",  # cyan
    "#AA3377",  # purple
    "#332288",  # indigo
    "#999933",  # olive
    "#882255",  # wine
    "#44AA99",  # teal
    "#222222",  # near black
    "#BBBBBB",  # grey
)
# the starting models of the paper's systems, each its own colour; any other name is hashed
FAMILY_COLOURS = {
    "slerp": 0,
    "ties": 1,
    "cap2mol": 2,
    "soup": 3,
    "mol2cap": 9,
    "task_arithmetic": 7,
    "pertask": 10,
    "meditron": 10,
    "base": 11,
    "t5": 5,
    "txtchem-t5": 5,
    "chemllm": 8,
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p")
HATCHES = ("", "//", "\\\\", "xx", "..", "++", "oo", "--", "||", "**", "OO", "//..")
LINESTYLES = {None: "-", "sft": ":", "dpo": "--", "cpo": "-", "kto": "-."}
METRIC_STYLES = tuple(zip(MARKERS, ("-", "--", "-.", ":") * 3, PALETTE, strict=False))
"""(marker, line style, colour) of the n-th metric in a figure of metrics."""


@dataclass(frozen=True)
class Style:
    """How one system is drawn: colour and marker by its starting model (the part before ``+``), line
    style by its alignment method (solid for a baseline), hatch for bars."""

    colour: str
    marker: str
    linestyle: str
    hatch: str


def _slot(name: str, salt: str = "") -> int:
    return int(hashlib.sha256(f"{salt}{name}".encode()).hexdigest(), 16) % len(PALETTE)


def _mix(colour: str, amount: float) -> str:
    """``colour`` moved ``amount`` (0-1) of the way to white."""
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02X}" for c in rgb)


RATIO_NAME = re.compile(r"^(?P<family>.+)-(?P<mol2cap>\d+)to(?P<cap2mol>\d+)$")
"""A ratio-sweep merge (``slerp-1to4``): its family's colour, lighter the less Cap2Mol it mixes in."""


def system_style(system: str) -> Style:
    """The one colour (and marker, line style, hatch) assignment, keyed by the system's name.

    ``<init>+<method>``: colour, marker and hatch from ``init``, line style from ``method`` (a
    baseline's name is its own ``init``, drawn solid). Known starting models have fixed colours; a
    ratio-sweep merge ``<family>-<a>to<b>`` takes its family's colour lightened by its Mol2Cap share
    and a marker of its own; any other name a stable hash of itself, the same in every run and figure.
    """
    init, _, method = system.partition("+")
    linestyle = LINESTYLES.get(method or None, ":")
    if init in FAMILY_COLOURS:
        slot = FAMILY_COLOURS[init]
        return Style(PALETTE[slot], MARKERS[slot], linestyle, HATCHES[slot])
    sweep = RATIO_NAME.match(init)
    if sweep and sweep["family"] in FAMILY_COLOURS:
        a, b = int(sweep["mol2cap"]), int(sweep["cap2mol"])
        colour = _mix(PALETTE[FAMILY_COLOURS[sweep["family"]]], 0.65 * a / max(a + b, 1))
    else:
        colour = PALETTE[_slot(init)]
    slot = _slot(init, "marker")
    return Style(colour, MARKERS[slot], linestyle, HATCHES[slot])


def edge_colour(colour: str) -> str:
    """Black, or white on a dark fill, for bar edges and hatching that stay visible."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 90 else "black"


def system_colour(system: str) -> str:
    """The colour of ``system`` in every figure (:func:`system_style`)."""
    return system_style(system).colour


def save(fig, stem: str | Path) -> list[Path]:
    """Write ``stem``.png and ``stem``.svg atomically and close the figure."""
    paths = []
    for suffix in (".png", ".svg"):
        path = Path(f"{stem}{suffix}")
        with atomic_path(path) as tmp:
            fig.savefig(
                tmp,
                format=suffix[1:],
                dpi=150,
                bbox_inches="tight",
                metadata={"Date": None} if suffix == ".svg" else {"Software": None},
            )
        paths.append(path)
    plt.close(fig)
    return paths


def word_counts(captions: Sequence[str], stem: str | Path, thresholds: Sequence[int] = ()) -> list[Path]:
    """Fig. 9: distribution of caption word counts, with the long-caption thresholds marked."""
    counts = pd.Series([len(str(c).split()) for c in captions])
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.6))
    # a bar per word count (centred on it) unless the range is wide
    span = int(counts.max() - counts.min()) + 1 if len(counts) else 1
    step = max(1, -(-span // 40))
    bins = [counts.min() - 0.5 + step * i for i in range(-(-span // step) + 1)] if len(counts) else 5
    ax.hist(counts, bins=bins, color=PALETTE[0], edgecolor="white")
    for threshold in thresholds:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
        ax.text(threshold, ax.get_ylim()[1] * 0.95, f" ≥{threshold}", va="top", fontsize=7)
    # word counts and numbers of captions are whole numbers
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("words per caption")
    ax.set_ylabel("captions")
    ax.set_title(
        f"Caption length (mean {counts.mean():.1f}, sd {counts.std():.1f}, n={len(counts)})", fontsize=8
    )
    return save(fig, stem)


def ratio_name(cap2mol_weight: float) -> str:
    """The Mol2Cap:Cap2Mol ratio of a merge from its Cap2Mol share r2/(r1+r2): 18/19 -> "1:18"."""
    share = Fraction(cap2mol_weight).limit_denominator(1000)
    return f"{share.denominator - share.numerator}:{share.numerator}"


def ratio_ablation(scores: Mapping[float, Mapping[str, Mapping[str, float]]], stem: str | Path) -> list[Path]:
    """Fig. 4: each task's metrics against the Mol2Cap:Cap2Mol ratio of the merge.

    ``scores``: {cap2mol weight r2/(r1+r2): {task: summary}}; one panel per task. The merges are
    evenly spaced in order of their Cap2Mol share and named by their ratio; the legend sits below the
    panels, and each metric has its own marker and line style.
    """
    ratios = sorted(scores)
    xs = range(len(ratios))
    fig, axes = plt.subplots(1, 2, figsize=(2 * COLUMN_WIDTH, 2.8))
    handles = {}
    for ax, task in zip(axes, TASKS, strict=True):
        for (marker, linestyle, colour), metric in zip(
            METRIC_STYLES, [m for m in METRICS[task] if m.bounded], strict=False
        ):
            (line,) = ax.plot(
                xs,
                [scores[r][task][metric.key] for r in ratios],
                marker=marker,
                linestyle=linestyle,
                color=colour,
                label=metric.label,
            )
            handles[(task, metric.label)] = line
        ax.set_xticks(list(xs), [ratio_name(r) for r in ratios], fontsize=7)
        ax.set_title("Mol2Cap" if task == CAPTION_TASK else "Cap2Mol", fontsize=9)
        ax.set_xlabel("Mol2Cap:Cap2Mol ratio of the merge", fontsize=8)
        ax.set_ylabel("score", fontsize=8)
        ax.legend(
            handles=[h for (t, _), h in handles.items() if t == task],
            fontsize=6,
            ncol=3,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.28),
            frameon=False,
        )
    return save(fig, stem)


def merge_comparison(
    scores: Mapping[str, Mapping[str, Mapping[str, float]]],
    stem: str | Path,
    systems: Mapping[str, str] | None = None,
) -> list[Path]:
    """Fig. 8: grouped bars of each task's bounded metrics for each merge (e.g. SLERP, TIES, soup).

    ``scores``: {label: {task: summary}}; ``systems``: {label: system name}, for the system's style
    (the label itself when not given). Bars carry their system's colour and hatch."""
    labels = list(scores)
    systems = {label: (systems or {}).get(label, label) for label in labels}
    fig, axes = plt.subplots(1, 2, figsize=(2 * COLUMN_WIDTH, 3.0), constrained_layout=True)
    for ax, task in zip(axes, TASKS, strict=True):
        metrics = [m for m in METRICS[task] if m.bounded]
        width = 0.8 / len(labels)
        for i, label in enumerate(labels):
            style = system_style(systems[label])
            xs = [j + i * width for j in range(len(metrics))]
            ax.bar(
                xs,
                [scores[label][task][m.key] for m in metrics],
                width=width,
                label=label,
                color=style.colour,
                hatch=style.hatch,
                edgecolor=edge_colour(style.colour),
                linewidth=0.5,
            )
        ax.set_xticks(
            [j + 0.4 - width / 2 for j in range(len(metrics))],
            [m.label for m in metrics],
            fontsize=6,
            rotation=30,
            ha="right",
        )
        ax.set_title("Mol2Cap" if task == CAPTION_TASK else "Cap2Mol", fontsize=9)
        ax.set_ylabel("score (higher is better)", fontsize=8)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        names,
        fontsize=7,
        ncol=len(labels),
        loc="outside lower center",
        frameon=False,
    )
    return save(fig, stem)


def loss_curves(histories: Mapping[str, pd.DataFrame], stem: str | Path) -> list[Path]:
    """Training loss against step, one panel per alignment method (each optimises its own objective,
    so their losses are not on one scale): ``histories`` {system: frame with ``step`` and ``loss``}.
    Each run is drawn in its system's style (:func:`system_style`)."""
    by_method: dict[str, dict[str, pd.DataFrame]] = {}
    for name, history in histories.items():
        method = name.partition("+")[2] or "other"
        by_method.setdefault(method, {})[name] = history
    methods = [m for m in ALIGN_METHODS if m in by_method] + sorted(set(by_method) - set(ALIGN_METHODS))
    columns = min(2, len(methods))
    rows = -(-len(methods) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(COLUMN_WIDTH * columns, 2.3 * rows), squeeze=False, constrained_layout=True
    )
    for ax, method in zip(axes.flat, methods, strict=False):
        for name, history in by_method[method].items():
            rows_ = history.dropna(subset=["loss"])
            style = system_style(name)
            ax.plot(
                rows_["step"],
                rows_["loss"],
                label=name.partition("+")[0],
                color=style.colour,
                marker=style.marker,
                markersize=3,
                linestyle=style.linestyle,
                linewidth=1,
            )
        ax.set_title(f"{method.upper()} loss", fontsize=9)
        ax.set_xlabel("optimiser step", fontsize=8)
        ax.set_ylabel("training loss", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, title="initialised from", title_fontsize=6)
    for ax in list(axes.flat)[len(methods) :]:
        ax.set_visible(False)
    return save(fig, stem)


def figures_step(
    cfg: Mapping[str, Any],
    inputs: Mapping[str, str],
    cap2mol_weights: Mapping[str, float],
    out_dir: str | Path,
) -> None:
    """The make_figures step: Figs. 4, 8, 9, the training loss curves of every alignment run and the
    pictures of examples (:func:`molmix.examples.examples_step`: ``generations__<system>__<task>`` and
    ``atomic__<system>`` inputs, settings ``cfg["examples"]``)."""
    import json

    from molmix.artifacts import read_artifact, read_metadata
    from molmix.examples import examples_step

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores: dict[str, dict[str, dict]] = {}
    histories = {}
    generations: dict[str, dict[str, pd.DataFrame]] = {}
    atomic: dict[str, pd.DataFrame] = {}
    not_generated: set[str] = set()
    for key, path in inputs.items():
        kind, _, rest = key.partition("__")
        if kind == "score":
            model, task = rest.rsplit("__", 1)
            scores.setdefault(model, {})[task] = json.loads(Path(path).read_text())
        elif kind == "history":
            histories[rest] = read_artifact(path, "training_log")
        elif kind == "generations":
            system, task = rest.rsplit("__", 1)
            failed = read_metadata(path).get("failed")
            if failed:
                log.warning("example pictures: %s left out, it was not run (%s: %s)", system, task, failed)
                not_generated.add(system)
            generations.setdefault(system, {})[task] = read_artifact(path, "generations")
        elif kind == "atomic":
            atomic[rest] = read_artifact(path, "nli_scores")
    for system, summaries in sorted(scores.items()):
        failed = {task: s["failed"] for task, s in summaries.items() if s.get("failed")}
        if failed:
            log.warning(
                "figures: %s left out, it was not run (%s)",
                system,
                "; ".join(f"{task}: {reason}" for task, reason in sorted(failed.items())),
            )
            del scores[system]
    test = read_artifact(inputs["test"], "pairs")
    word_counts(test["caption"].tolist(), out / "caption_word_counts", cfg["long_caption_words"])
    sweep = {cap2mol_weights[m]: scores[m] for m in cap2mol_weights if m in scores}
    if len(sweep) >= 2:
        ratio_ablation(sweep, out / "ratio_ablation")
    comparison = {label: scores[model] for label, model in cfg["merge_comparison"].items() if model in scores}
    if comparison:
        merge_comparison(comparison, out / "merge_vs_soup", systems=cfg["merge_comparison"])
    if histories:
        loss_curves(histories, out / "training_loss")
    generations = {system: tasks for system, tasks in generations.items() if system not in not_generated}
    examples = cfg.get("examples")  # absent: a caller with no example inputs
    if generations and examples and examples["items"]:
        atomic = {system: frame for system, frame in atomic.items() if system in generations}
        examples_step(test, generations, atomic, examples, out)
