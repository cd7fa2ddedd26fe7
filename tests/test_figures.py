"""Figures and pictures of examples, drawn from small hand-made frames (no pipeline run)."""

from __future__ import annotations

import matplotlib.pyplot
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

import molmix.examples
import molmix.figures
import molmix.nli.figures
from conftest import REPO
from molmix.config import load_config
from molmix.examples import (
    INVALID,
    caption_examples,
    examples_step,
    molecule_examples,
    nli_examples,
    sample_ids,
)
from molmix.figures import (
    loss_curves,
    merge_comparison,
    ratio_ablation,
    ratio_name,
    system_colour,
    system_style,
    word_counts,
)
from molmix.layout import Experiment
from molmix.nli.figures import kl_comparison, score_distributions


def summary(level):
    return {
        "mol2cap": {k: level for k in ("bleu2", "bleu4", "rouge1", "rouge2", "rougeL", "meteor")},
        "cap2mol": {
            "bleu": level,
            "levenshtein": 10,
            "maccs_fts": level,
            "rdk_fts": level,
            "morgan_fts": level,
            "fcd": 3.0,
            "validity": level,
        },
    }


@pytest.fixture
def drawn(monkeypatch):
    """The figures drawn, open for reading: every call of ``save`` records its figure (and still writes it)."""
    figures = []
    save = molmix.figures.save

    def keep(fig, stem):
        figures.append(fig)
        return save(fig, stem)

    monkeypatch.setattr(molmix.figures.plt, "close", lambda *_: None)
    for module in (molmix.figures, molmix.nli.figures, molmix.examples):
        monkeypatch.setattr(module, "save", keep)
    yield figures
    for fig in figures:
        matplotlib.pyplot.close(fig)


def history(losses):
    return pd.DataFrame({"step": range(1, len(losses) + 1), "loss": losses})


def test_each_figure_writes_png_and_svg(tmp_path):
    outputs = []
    outputs += word_counts(["a b c", "a b c d e f", "x"] * 5, tmp_path / "words", thresholds=[4])
    outputs += ratio_ablation({0.5: summary(0.4), 0.947: summary(0.6)}, tmp_path / "ratio")
    outputs += merge_comparison({"SLERP": summary(0.6), "soup": summary(0.2)}, tmp_path / "soup")
    outputs += loss_curves(
        {"cpo": pd.DataFrame({"step": [1, 2, 3], "loss": [2.0, None, 1.0]})}, tmp_path / "loss"
    )
    assert sorted(p.name for p in outputs) == sorted(
        f"{stem}.{ext}" for stem in ("words", "ratio", "soup", "loss") for ext in ("png", "svg")
    )
    assert all(p.stat().st_size > 1000 for p in outputs)
    assert (tmp_path / "words.png").read_bytes()[:4] == b"\x89PNG"


def test_a_system_is_drawn_in_one_colour_across_figures(tmp_path, drawn):
    merge_comparison(
        {"SLERP+CPO": summary(0.6), "Soup+CPO": summary(0.2)},
        tmp_path / "soup",
        systems={"SLERP+CPO": "slerp+cpo", "Soup+CPO": "soup+cpo"},
    )
    loss_curves({"slerp+cpo": history([2, 1]), "soup+cpo": history([3, 2])}, tmp_path / "loss")
    frame = pd.DataFrame({"hallucination": [0.1, 0.2], "coverage": [0.5, 0.7], "unsupported": [0.3, 0.4]})
    score_distributions({"slerp+cpo": frame, "pertask": frame}, tmp_path / "atomic")
    bars, lines, histograms = drawn
    bar_colours = {c.get_label(): to_hex(c.patches[0].get_facecolor()) for c in bars.axes[0].containers}
    line_colours = {line.get_label(): to_hex(line.get_color()) for line in lines.axes[0].get_lines()}
    histogram_colour = to_hex(histograms.axes[0].patches[0].get_facecolor())
    slerp = system_colour("slerp+cpo").lower()
    assert bar_colours["SLERP+CPO"] == line_colours["slerp"] == histogram_colour == slerp
    assert bar_colours["Soup+CPO"] == line_colours["soup"] == system_colour("soup+cpo").lower() != slerp


def test_styles_tell_systems_apart_without_colour():
    styles = {s: system_style(s) for s in ("slerp+cpo", "ties+cpo", "cap2mol+cpo", "soup+cpo", "pertask")}
    assert len({s.colour for s in styles.values()}) == len(styles)
    assert len({s.marker for s in styles.values()}) == len(styles)
    assert len({s.hatch for s in styles.values()}) == len(styles)
    # the same starting model with another method: same colour, another line style
    assert system_style("cap2mol+dpo").colour == styles["cap2mol+cpo"].colour
    assert system_style("cap2mol+dpo").linestyle != styles["cap2mol+cpo"].linestyle
    # ratio-sweep merges: each its own colour, none the same as their family's
    sweep = {system_colour(f"slerp-{r}+cpo") for r in ("1to1", "1to4", "4to1")} | {system_colour("slerp+cpo")}
    assert len(sweep) == 4
    assert system_style("my-own-model") == system_style("my-own-model")


def test_loss_curves_one_panel_per_method_no_shared_colours(tmp_path, drawn):
    runs = {
        f"{init}+{method}": history([3, 2, 1])
        for init in ("cap2mol", "slerp", "ties", "soup", "slerp-1to1", "slerp-1to4", "slerp-4to1")
        for method in ("dpo", "cpo")
    }
    runs["cap2mol+kto"] = history([1, 0.5])
    loss_curves(runs, tmp_path / "loss")
    panels = [ax for ax in drawn[0].axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["DPO loss", "CPO loss", "KTO loss"]
    for ax in panels:
        colours = [to_hex(line.get_color()) for line in ax.get_lines()]
        assert len(colours) == len(set(colours))


def test_ratio_ablation_names_its_points_and_keeps_the_legend_off_the_lines(tmp_path, drawn):
    assert ratio_name(18 / 19) == "1:18" and ratio_name(0.2) == "4:1" and ratio_name(0.5) == "1:1"
    ratio_ablation({0.8: summary(0.5), 0.5: summary(0.4), 18 / 19: summary(0.6)}, tmp_path / "ratio")
    fig = drawn[0]
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1:1", "1:4", "1:18"]
        legend = ax.get_legend().get_window_extent()
        assert legend.y1 <= ax.get_window_extent().y0  # below the panel, not over its lines
        assert len({line.get_marker() for line in ax.get_lines()}) == len(ax.get_lines())


def test_merge_comparison_has_a_y_label_and_word_counts_integer_ticks(tmp_path, drawn):
    merge_comparison({"SLERP": summary(0.6), "soup": summary(0.2)}, tmp_path / "soup")
    word_counts(["a b c", "a b c d e f", "x y"] * 3, tmp_path / "words")
    bars, words = drawn
    assert all(ax.get_ylabel() for ax in bars.axes)
    ticks = words.axes[0].get_xticks()
    assert np.allclose(ticks, np.round(ticks))


def test_nli_histograms_do_not_overlay_and_kl_has_its_unit(tmp_path, drawn):
    frame = pd.DataFrame(
        {"hallucination": [0.0, 0.1], "coverage": [0.4, 0.9], "unsupported": [0.2, 0.5]}, index=["a", "b"]
    )
    score_distributions({"slerp+cpo": frame, "pertask": frame}, tmp_path / "atomic")
    coverage = {"atomic": {"slerp+cpo": frame["coverage"], "pertask": frame["coverage"] * 0.5}}
    kl = pd.DataFrame({"method": ["atomic"], "kl": [0.54], "n": [2]})
    compare = {"preferred": "slerp+cpo", "dispreferred": "pertask", "bins": 10}
    kl_comparison(coverage, kl, compare, pd.Series([30, 60], index=["a", "b"]), "all", tmp_path / "kl")
    distributions, kl_figure = drawn
    for ax in distributions.axes:  # one system per panel, opaque
        assert len({p.get_facecolor() for p in ax.patches}) == 1
        assert all(p.get_alpha() in (None, 1) for p in ax.patches)
    panel = kl_figure.axes[0]
    assert "nats" in panel.get_title()
    preferred, dispreferred = panel.containers
    assert all(  # side by side: no bar of one overlaps a bar of the other
        a.get_x() + a.get_width() <= b.get_x() + 1e-9 for a, b in zip(preferred, dispreferred, strict=True)
    )
    assert dispreferred.patches[0].get_hatch() and not preferred.patches[0].get_hatch()


TEST = pd.DataFrame(
    {
        "id": ["m1", "m2"],
        "smiles": ["CCO", "c1ccccc1O"],
        "caption": ["The molecule is an alcohol.", "The molecule is a phenol."],
    }
)


def generations(predictions):
    return pd.DataFrame({"id": list(predictions), "prediction": list(predictions.values())})


def test_invalid_smiles_are_marked_invalid(tmp_path, drawn):
    systems = {"slerp+cpo": generations({"m1": "CCO", "m2": "C1CC(("}), "pertask": generations({"m1": ""})}
    paths = molecule_examples(TEST, systems, ["m1", "m2"], tmp_path / "examples_molecules")
    assert {p.suffix for p in paths} == {".png", ".svg"}
    axes = [ax for ax in drawn[0].axes if ax.axison]  # the molecule cells (caption rows have no axes)
    cells = np.array(axes).reshape(2, 3)  # items x (gold, slerp+cpo, pertask)

    def texts(ax):
        return " ".join(t.get_text() for t in ax.texts)

    assert [INVALID.upper() in texts(ax) for ax in cells[0]] == [False, False, True]  # pertask: empty
    assert [INVALID.upper() in texts(ax) for ax in cells[1]] == [False, True, True]  # unparsable; none
    assert "C1CC((" in texts(cells[1, 1]) and "no generation" in texts(cells[1, 2])
    assert cells[0, 0].images and cells[0, 1].images and not cells[1, 1].images
    # the system's frame is its colour
    assert to_hex(cells[0, 1].spines["left"].get_edgecolor()) == system_colour("slerp+cpo").lower()
    assert "alcohol" in " ".join(t.get_text() for ax in drawn[0].axes for t in ax.texts)


def test_caption_examples_show_gold_and_generated(tmp_path, drawn):
    systems = {
        "slerp+cpo": generations({"m1": "The molecule is a ketone.", "m2": "The molecule is a phenol."})
    }
    caption_examples(TEST, systems, ["m1", "m2"], tmp_path / "examples_captions")
    text = " ".join(t.get_text() for ax in drawn[0].axes for t in ax.texts)
    assert "alcohol" in text and "ketone" in text
    assert [ax.get_title() for ax in drawn[0].axes[:2]] == ["ground truth", "slerp+cpo"]


def atomic_frame():
    reference = ["The molecule is an alcohol.", "The molecule is small.", "The molecule is toxic."]
    generated = ["The molecule is an alcohol.", "The molecule is large."]
    contradiction = np.array([[0.0, 0.1, 0.2], [0.3, 0.9, 0.4]])  # L x N
    entailment = np.array([[0.95, 0.1], [0.0, 0.2], [0.05, 0.3]])  # N x L
    return (
        pd.DataFrame(
            {
                "id": ["m1"],
                "reference_atoms": [reference],
                "prediction_atoms": [generated],
                "contradiction": [contradiction.tolist()],
                "entailment": [entailment.tolist()],
                "hallucination": [contradiction.min(axis=1).mean()],
                "coverage": [entailment.max(axis=1).mean()],
            }
        ),
        contradiction,
        entailment,
    )


def test_nli_matrices_are_labelled_with_the_atoms_and_show_the_pooling(tmp_path, drawn):
    frame, contradiction, entailment = atomic_frame()
    nli_examples(frame, ["m1"], "slerp+cpo", tmp_path / "examples_nli")
    left, right = drawn[0].axes[:2]
    reference = ["is an alcohol.", "is small.", "is toxic."]
    generated = ["is an alcohol.", "is large."]
    assert [t.get_text() for t in left.get_yticklabels()] == [*reference, "min over reference (Eq. 6)"]
    assert [t.get_text() for t in left.get_xticklabels()] == generated
    assert [t.get_text() for t in right.get_yticklabels()] == reference
    assert [t.get_text() for t in right.get_xticklabels()] == [*generated, "max over generated (Eq. 7)"]
    shown_c = left.images[0].get_array()
    shown_e = right.images[0].get_array()
    assert np.allclose(shown_c[:3], contradiction.T) and np.allclose(shown_c[3], contradiction.min(axis=1))
    assert np.allclose(shown_e[:, :2], entailment) and np.allclose(shown_e[:, 2], entailment.max(axis=1))
    assert "hallucination = 0.15" in left.get_title() and "coverage = 0.48" in right.get_title()


def test_examples_step_draws_the_three_pictures(tmp_path):
    frame, _, _ = atomic_frame()
    gens = {
        "slerp+cpo": {
            "cap2mol": generations({"m1": "CCO", "m2": "xx"}),
            "mol2cap": generations({"m1": "The molecule is an alcohol.", "m2": "The molecule is a phenol."}),
        }
    }
    settings = {"items": 2, "nli_items": 1, "seed": 0}
    paths = examples_step(TEST, gens, {"slerp+cpo": frame}, settings, tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        f"examples_{kind}.{ext}" for kind in ("molecules", "captions", "nli") for ext in ("png", "svg")
    )
    assert sample_ids(list("abcdefgh"), 3, 0) == sample_ids(list("abcdefgh"), 3, 0)
    assert len(sample_ids(list("abcdefgh"), 3, 1)) == 3 and sample_ids(["a"], 4, 0) == ["a"]


def test_the_pictures_inputs_are_declared():
    config = load_config(REPO / "config.yaml")
    run = Experiment(config)
    inputs = run.figure_inputs()
    systems = run.example_systems()
    assert systems == config["nli"]["compare"]["systems"]
    for system in systems:
        for task in ("mol2cap", "cap2mol"):
            assert (
                inputs[f"generations__{system}__{task}"]
                == f"results/generations/demo/{system}/{task}.parquet"
            )
    assert inputs[f"atomic__{systems[0]}"] == f"results/nli/demo/{systems[0]}/atomic.parquet"
    config["figures"]["examples"]["items"] = 0
    assert not [
        key for key in Experiment(config).figure_inputs() if key.startswith(("generations", "atomic"))
    ]
    config["figures"]["examples"]["systems"] = ["no-such-system"]
    with pytest.raises(ValueError, match="no-such-system"):
        Experiment(config).example_systems()


def test_figures_step_draws_the_pictures_and_leaves_out_a_system_not_run(tmp_path):
    from molmix.artifacts import write_artifact
    from molmix.figures import figures_step

    write_artifact(TEST.assign(category="x"), tmp_path / "test.parquet", "pairs")
    inputs = {"test": str(tmp_path / "test.parquet")}
    for system, failed in (("slerp+cpo", None), ("broken+cpo", "model could not be loaded")):
        for task, predictions in (("cap2mol", ["CCO", "C1CC(("]), ("mol2cap", ["an alcohol", "a phenol"])):
            path = tmp_path / f"{system}.{task}.parquet"
            frame = pd.DataFrame(
                {
                    "id": ["m1", "m2"],
                    "task": task,
                    "input": "x",
                    "reference": "y",
                    "prediction": predictions,
                    "model": system,
                }
            ).iloc[: 0 if failed else 2]
            write_artifact(frame, path, "generations", extra_metadata={"failed": failed} if failed else None)
            inputs[f"generations__{system}__{task}"] = str(path)
    frame, _, _ = atomic_frame()
    nli = frame.assign(model="slerp+cpo", method="atomic", reference="r", prediction="p", unsupported=0.1)
    write_artifact(nli, tmp_path / "atomic.parquet", "nli_scores")
    inputs["atomic__slerp+cpo"] = str(tmp_path / "atomic.parquet")
    cfg = {
        "long_caption_words": [3],
        "merge_comparison": {},
        "examples": {"items": 2, "nli_items": 1, "seed": 0, "systems": []},
    }
    figures_step(cfg, inputs, {}, tmp_path / "figures")
    names = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert names == sorted(
        f"{stem}.{ext}"
        for stem in ("caption_word_counts", "examples_molecules", "examples_captions", "examples_nli")
        for ext in ("png", "svg")
    )
    assert "broken" not in (tmp_path / "figures" / "examples_molecules.svg").read_text()


def test_nli_matrices_of_an_item_without_atoms_say_so(tmp_path, drawn):
    frame = pd.DataFrame(
        {
            "id": ["a"],
            "reference_atoms": [["The molecule is an alcohol."]],
            "prediction_atoms": [[]],
            "contradiction": [[]],
            "entailment": [[[]]],
            "hallucination": [np.nan],
            "coverage": [0.0],
        }
    )
    nli_examples(frame, ["a"], "pertask", tmp_path / "examples_nli")
    assert all("no generated atoms" in ax.texts[0].get_text() for ax in drawn[0].axes[:2])
