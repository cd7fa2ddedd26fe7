"""The paper's figures from pipeline outputs (matplotlib, PNG + SVG).

Fig. 4: metrics against the Mol2Cap:Cap2Mol mixing ratio; Fig. 8: SLERP / TIES against the model
soup; Fig. 9: caption word counts; training loss curves per alignment method. Each function takes
plain frames or dicts, so it can be called on any run's outputs. A system that was not run (a score
summary that says ``failed``) is left out of the figures, with a line in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from molmix.artifacts import atomic_path  # noqa: E402
from molmix.names import CAPTION_TASK, TASKS  # noqa: E402
from molmix.tables import METRICS  # noqa: E402

log = logging.getLogger(__name__)


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
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(counts, bins=min(40, max(5, counts.nunique())), color="#4477aa", edgecolor="white")
    for threshold in thresholds:
        ax.axvline(threshold, color="#cc6677", linestyle="--", linewidth=1)
        ax.text(threshold, ax.get_ylim()[1] * 0.95, f" ≥{threshold}", color="#cc6677", va="top", fontsize=8)
    ax.set_xlabel("words per caption")
    ax.set_ylabel("captions")
    ax.set_title(
        f"Caption length (mean {counts.mean():.1f}, sd {counts.std():.1f}, n={len(counts)})", fontsize=9
    )
    return save(fig, stem)


def ratio_ablation(scores: Mapping[float, Mapping[str, Mapping[str, float]]], stem: str | Path) -> list[Path]:
    """Fig. 4: each task's metrics against the Cap2Mol share of the mix.

    ``scores``: {cap2mol weight r2/(r1+r2): {task: summary}}; one panel per task.
    """
    ratios = sorted(scores)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, task in zip(axes, TASKS, strict=True):
        for metric in METRICS[task]:
            if not metric.bounded:
                continue
            ax.plot(ratios, [scores[r][task][metric.key] for r in ratios], marker="o", label=metric.label)
        ax.set_title("Mol2Cap" if task == CAPTION_TASK else "Cap2Mol")
        ax.set_xlabel("Cap2Mol weight in the merge")
        ax.set_ylabel("score")
        ax.legend(fontsize=7)
    return save(fig, stem)


def merge_comparison(scores: Mapping[str, Mapping[str, Mapping[str, float]]], stem: str | Path) -> list[Path]:
    """Fig. 8: grouped bars of each task's bounded metrics for each merge (e.g. SLERP, TIES, soup)."""
    systems = list(scores)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    for ax, task in zip(axes, TASKS, strict=True):
        metrics = [m for m in METRICS[task] if m.bounded]
        width = 0.8 / len(systems)
        for i, system in enumerate(systems):
            xs = [j + i * width for j in range(len(metrics))]
            ax.bar(xs, [scores[system][task][m.key] for m in metrics], width=width, label=system)
        ax.set_xticks(
            [j + 0.4 - width / 2 for j in range(len(metrics))], [m.label for m in metrics], fontsize=7
        )
        ax.set_title("Mol2Cap" if task == CAPTION_TASK else "Cap2Mol")
        ax.legend(fontsize=7)
    return save(fig, stem)


def loss_curves(histories: Mapping[str, pd.DataFrame], stem: str | Path) -> list[Path]:
    """Training loss against step for each run (a frame with ``step`` and ``loss`` per run)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, history in histories.items():
        rows = history.dropna(subset=["loss"])
        ax.plot(rows["step"], rows["loss"], label=name, linewidth=1)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=7)
    return save(fig, stem)


def figures_step(
    cfg: Mapping[str, Any],
    inputs: Mapping[str, str],
    cap2mol_weights: Mapping[str, float],
    out_dir: str | Path,
) -> None:
    """The make_figures step: Figs. 4, 8, 9 and the training loss curves of every alignment run."""
    import json

    from molmix.artifacts import read_artifact

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores: dict[str, dict[str, dict]] = {}
    histories = {}
    for key, path in inputs.items():
        kind, _, rest = key.partition("__")
        if kind == "score":
            model, task = rest.rsplit("__", 1)
            scores.setdefault(model, {})[task] = json.loads(Path(path).read_text())
        elif kind == "history":
            histories[rest] = read_artifact(path, "training_log")
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
        merge_comparison(comparison, out / "merge_vs_soup")
    if histories:
        loss_curves(histories, out / "training_loss")
