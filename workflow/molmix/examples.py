"""Pictures of examples (Appx. K and L): molecules and captions the systems generated, and the
atom-by-atom NLI matrices behind Eqs. 6 and 7.

- :func:`molecule_examples` (Appx. K, Fig. 16): for each sampled test item, its input caption, the
  gold molecule and each system's generated molecule drawn with RDKit; a SMILES RDKit cannot parse
  is drawn as a crossed box marked "invalid" with the string it got.
- :func:`caption_examples` (Appx. K, Fig. 17): the gold caption and each system's generated caption.
- :func:`nli_examples` (Appx. L, Table 6): per item, the contradiction and entailment matrices as
  heatmaps with the atoms as labels, reference atoms as rows and generated atoms as columns in both,
  and the pooling drawn as a margin: Eq. 6's min over reference atoms under the contradiction
  matrix (one value per generated atom, their mean = hallucination), Eq. 7's max over generated
  atoms beside the entailment matrix (one value per reference atom, their mean = coverage).

Each system keeps its colour from :func:`molmix.figures.system_style`. Items are a seeded sample of
the test set (``figures.examples``), the same for every system.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from molmix.figures import plt, save, system_colour

log = logging.getLogger(__name__)

INVALID = "invalid"
"""The mark drawn over a generated molecule RDKit cannot parse."""
ATOM_LABEL_CHARS = 48
"""Atoms longer than this are cut (with "…") in heatmap labels."""


def sample_ids(ids: Sequence[str], n: int, seed: int) -> list[str]:
    """``n`` test ids drawn with ``seed`` (all of them when there are fewer), in test-set order."""
    ids = list(ids)
    if n >= len(ids):
        return ids
    chosen = set(np.random.default_rng(seed).choice(len(ids), size=n, replace=False).tolist())
    return [item for i, item in enumerate(ids) if i in chosen]


def molecule_image(smiles: str | None, size: int = 300):
    """An RDKit drawing of ``smiles`` as an RGB array, or None when it is empty or does not parse."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import Draw

    if not isinstance(smiles, str) or not smiles.strip():
        return None
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles.strip())
    finally:
        RDLogger.EnableLog("rdApp.*")
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return np.asarray(Draw.MolToImage(mol, size=(size, size)).convert("RGB"))


def _wrap(text: str, width: int, max_lines: int | None = None) -> str:
    lines = textwrap.wrap(str(text), width) or [""]
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 1] + "…"
    return "\n".join(lines)


def _frame(ax, colour: str, width: float = 2.0) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(colour)
        spine.set_linewidth(width)


def molecule_examples(
    test: pd.DataFrame, generations: Mapping[str, pd.DataFrame], ids: Sequence[str], stem: str | Path
) -> list[Path]:
    """Appx. K, Fig. 16: a row per item (its input caption above), the gold molecule then each system's.

    ``test``: the test pairs (``id``, ``smiles``, ``caption``); ``generations``: {system: Cap2Mol
    generations (``id``, ``prediction``)}. A generated SMILES that does not parse (or is empty) is
    marked invalid, its string printed; an item a system has no row for is marked "no generation".
    """
    test = test.set_index("id")
    predictions = {s: frame.set_index("id")["prediction"] for s, frame in generations.items()}
    columns = ["gold", *generations]
    fig = plt.figure(figsize=(1.45 * len(columns), 1.95 * len(ids) + 0.2), constrained_layout=True)
    grid = fig.add_gridspec(2 * len(ids), len(columns), height_ratios=[0.4, 1.45] * len(ids))
    for row, item in enumerate(ids):
        text = fig.add_subplot(grid[2 * row, :])
        text.set_axis_off()
        # about 3.3 points a character at 5.5 points
        caption = _wrap(test.at[item, "caption"], int(1.45 * len(columns) * 72 / 3.3), 3)
        label = text.text(0, 0, f"{item}, input caption: {caption}", fontsize=5.5, va="bottom", ha="left")
        label.set_in_layout(False)
        for col, name in enumerate(columns):
            ax = fig.add_subplot(grid[2 * row + 1, col])
            if name == "gold":
                smiles, colour = test.at[item, "smiles"], "black"
            else:
                smiles, colour = predictions[name].get(item), system_colour(name)
            image = molecule_image(smiles)
            if image is not None:
                ax.imshow(image)
            else:
                ax.set_xlim(0, 1)
                ax.set_ylim(0, 1)
                ax.set_aspect("equal")
                ax.plot([0, 1], [0, 1], color="grey", linewidth=0.5)
                ax.plot([0, 1], [1, 0], color="grey", linewidth=0.5)
                shown = "no generation" if smiles is None else (_wrap(smiles, 22, 3) or "(empty)")
                box = {"facecolor": "white", "edgecolor": "black"}
                ax.text(
                    0.5, 0.65, INVALID.upper(), ha="center", va="center", fontsize=8, weight="bold", bbox=box
                )
                box = {"facecolor": "white", "edgecolor": "none"}
                ax.text(0.5, 0.3, shown, ha="center", va="center", fontsize=4.5, family="monospace", bbox=box)
            _frame(ax, colour, 2.5 if name != "gold" else 1.0)
            if row == 0:
                ax.set_title("ground truth" if name == "gold" else name, fontsize=7)
    return save(fig, stem)


def caption_examples(
    test: pd.DataFrame, generations: Mapping[str, pd.DataFrame], ids: Sequence[str], stem: str | Path
) -> list[Path]:
    """Appx. K, Fig. 17: a row per item, the gold caption then each system's generated caption (Mol2Cap
    generations: ``id``, ``prediction``), each system's column headed in its colour."""
    test = test.set_index("id")
    predictions = {s: frame.set_index("id")["prediction"] for s, frame in generations.items()}
    columns = ["gold", *generations]
    width = 28
    lines = 12
    fig, axes = plt.subplots(
        len(ids),
        len(columns),
        figsize=(1.75 * len(columns), 1.45 * len(ids) + 0.3),
        squeeze=False,
        constrained_layout=True,
    )
    for row, item in enumerate(ids):
        for col, name in enumerate(columns):
            ax = axes[row, col]
            if name == "gold":
                text, colour = test.at[item, "caption"], "black"
            else:
                text, colour = predictions[name].get(item), system_colour(name)
            shown = (
                "(no generation)"
                if text is None
                else _wrap(text, width, lines)
                if str(text).strip()
                else "(empty)"
            )
            ax.text(0.03, 0.97, shown, ha="left", va="top", fontsize=5, transform=ax.transAxes, wrap=False)
            _frame(ax, colour, 2.0 if name != "gold" else 1.0)
            if row == 0:
                ax.set_title("ground truth" if name == "gold" else name, fontsize=7)
            if col == 0:
                ax.set_ylabel(item, fontsize=6)
    return save(fig, stem)


def _label(atom: str) -> str:
    atom = str(atom).removeprefix("The molecule ").strip()
    return atom if len(atom) <= ATOM_LABEL_CHARS else atom[: ATOM_LABEL_CHARS - 1] + "…"


def nli_examples(atomic: pd.DataFrame, ids: Sequence[str], system: str, stem: str | Path) -> list[Path]:
    """Appx. L, Table 6 as pictures: for each item, contradiction and entailment heatmaps of ``system``'s
    caption against the reference, reference atoms as rows and generated atoms as columns.

    ``atomic``: the per-item atomic NLI scores (``reference_atoms``, ``prediction_atoms``,
    ``contradiction`` L x N, ``entailment`` N x L, ``hallucination``, ``coverage``, optionally
    ``unsupported``). Left: C transposed, with Eq. 6's pooling as a bottom row (min over reference
    atoms of each generated atom; mean = hallucination). Right: E, with Eq. 7's pooling as a right
    column (max over generated atoms of each reference atom; mean = coverage). ("The molecule" is
    cut from the labels.)
    """
    frame = atomic.set_index("id")
    ids = [i for i in ids if i in frame.index]
    sizes = [(len(frame.at[i, "reference_atoms"]), len(frame.at[i, "prediction_atoms"])) for i in ids]
    heights = [max(n, 1) * 0.2 + 2.4 for n, _ in sizes]
    widths = max((max(m, 1) for _, m in sizes), default=1) * 0.2 + 0.6
    fig, axes = plt.subplots(
        len(ids) or 1,
        2,
        figsize=(2 * widths + 2 * 2.4 + 0.6, sum(heights) or 2),
        squeeze=False,
        gridspec_kw={"height_ratios": heights or [1]},
        constrained_layout=True,
    )
    cmap = plt.get_cmap("Greys")
    for row, item in enumerate(ids):
        record = frame.loc[item]
        reference = [_label(a) for a in record["reference_atoms"]]
        generated = [_label(a) for a in record["prediction_atoms"]]
        n, m = len(reference), len(generated)
        contradiction = np.array([list(r) for r in record["contradiction"]], dtype=float).reshape(m, n).T
        entailment = np.array([list(r) for r in record["entailment"]], dtype=float).reshape(n, m)
        # Eq. 6: min over reference atoms (rows here) per generated atom; Eq. 7: max over generated atoms
        eq6 = contradiction.min(axis=0) if n else np.full(m, np.nan)
        eq7 = entailment.max(axis=1) if m else np.zeros(n)
        panels = (
            (
                axes[row, 0],
                np.vstack([contradiction, eq6[None, :]]) if m else contradiction,
                "contradiction C",
                "Eq. 6 hallucination",
                record["hallucination"],
                "bottom",
            ),
            (
                axes[row, 1],
                np.hstack([entailment, eq7[:, None]]) if n else entailment,
                "entailment E",
                "Eq. 7 coverage",
                record["coverage"],
                "right",
            ),
        )
        for ax, matrix, name, score_name, score, margin in panels:
            title = f"{item} ({system}): {name}\n{score_name} = {score:.2f}"
            if margin == "bottom" and "unsupported" in record.index and pd.notna(record["unsupported"]):
                title += f" (unsupported, ours: {record['unsupported']:.2f})"
            ax.set_title(title, fontsize=6.5)
            if not n or not m:  # Eq. 6 undefined, Eq. 7 = 0 (molmix.nli.atomic.pool)
                ax.set_xticks([])
                ax.set_yticks([])
                missing = "reference" if not n else "generated"
                ax.text(0.5, 0.5, f"no {missing} atoms", ha="center", va="center", transform=ax.transAxes)
                continue
            ax.imshow(matrix, cmap=cmap, vmin=0, vmax=1, aspect="auto")
            rows = reference + (["min over reference (Eq. 6)"] if margin == "bottom" and m else [])
            cols = generated + (["max over generated (Eq. 7)"] if margin == "right" and n else [])
            ax.set_yticks(range(len(rows)), rows, fontsize=5)
            ax.set_xticks(range(len(cols)), cols, fontsize=5, rotation=60, ha="right", rotation_mode="anchor")
            if margin == "bottom" and m:
                ax.axhline(n - 0.5, color=system_colour(system), linewidth=2)
                ax.get_yticklabels()[-1].set_weight("bold")
            if margin == "right" and n:
                ax.axvline(m - 0.5, color=system_colour(system), linewidth=2)
                ax.get_xticklabels()[-1].set_weight("bold")
            for (i, j), value in np.ndenumerate(matrix):
                if np.isfinite(value):
                    ax.text(
                        j,
                        i,
                        f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=4,
                        color="white" if value > 0.5 else "black",
                    )
        if row == len(ids) - 1:
            axes[row, 0].set_xlabel("generated atoms (hypotheses H_j)", fontsize=6)
            axes[row, 1].set_xlabel("generated atoms (premises P_j)", fontsize=6)
        axes[row, 0].set_ylabel("reference atoms (premises P_i)", fontsize=6)
        axes[row, 1].set_ylabel("reference atoms (hypotheses H_i)", fontsize=6)
    fig.suptitle(
        f"Atomic-level cross-NLI of {system}'s captions: P(contradiction) and P(entailment) per atom pair "
        '(darker = higher; "The molecule" cut from the atoms)',
        fontsize=7,
    )
    if not ids:
        for ax in axes.flat:
            ax.set_axis_off()
        axes[0, 0].text(
            0.5, 0.5, "no NLI scores for the sampled items", ha="center", transform=axes[0, 0].transAxes
        )
    return save(fig, stem)


def examples_step(
    test: pd.DataFrame,
    generations: Mapping[str, Mapping[str, pd.DataFrame]],
    atomic: Mapping[str, pd.DataFrame],
    settings: Mapping[str, int],
    out_dir: str | Path,
) -> list[Path]:
    """Draw ``examples_molecules``, ``examples_captions`` and (with NLI scores) ``examples_nli`` into
    ``out_dir``. ``generations``: {system: {task: frame}}; ``atomic``: {system: atomic NLI scores} (the
    first system's matrices are drawn); ``settings``: ``figures.examples`` (items, nli_items, seed)."""
    from molmix.layout import EXAMPLE_FIGURES
    from molmix.names import CAPTION_TASK, MOLECULE_TASK

    molecules, captions, matrices = EXAMPLE_FIGURES

    out = Path(out_dir)
    ids = sample_ids(test["id"].tolist(), settings["items"], settings["seed"])
    paths = molecule_examples(
        test, {s: tasks[MOLECULE_TASK] for s, tasks in generations.items()}, ids, out / molecules
    )
    paths += caption_examples(
        test, {s: tasks[CAPTION_TASK] for s, tasks in generations.items()}, ids, out / captions
    )
    for system, frame in atomic.items():
        paths += nli_examples(frame, ids[: settings["nli_items"]], system, out / matrices)
        break
    return paths
