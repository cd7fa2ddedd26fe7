"""Atomic-level cross-NLI: bullet parsing, the rules decomposer, pooling (Eqs. 6-7), label mapping, caches."""

from __future__ import annotations

import json
import math
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pandas as pd
import pytest

from molmix.nli.atomic import PairScorer, pool, score_units, summarize
from molmix.nli.baselines import baseline_units
from molmix.nli.cache import ParquetStore
from molmix.nli.decompose import (
    EXAMPLE_TEXT,
    DecompositionError,
    decompose,
    decompose_rules,
    messages_for,
    parse_bullets,
)
from molmix.nli.kl import compare_methods, histogram, kl_divergence
from molmix.nli.model import LABELS, NLIModelError, label_indices

# --- bullet lists ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "- The molecule is a nutrient.\n- The molecule impacts aging.",
        "* The molecule is a nutrient.\n* The molecule impacts aging.",
        "1. The molecule is a nutrient.\n2. The molecule impacts aging.",
        "1) The molecule is a nutrient.\n2) The molecule impacts aging.",
        "Here are the independent facts:\n\n- The molecule is a nutrient.\n  - The molecule impacts aging.\n",
        "- The molecule is a nutrient. - The molecule impacts aging.",  # one line, as Fig. 11 prints it
        "1. The molecule is a nutrient. 2. The molecule impacts aging.",
        "• The molecule is a nutrient.\n• The molecule impacts aging.\n• The molecule is a nutrient.",
    ],
)
def test_bullet_lists_in_every_style_give_the_same_facts(answer):
    assert parse_bullets(answer) == ["The molecule is a nutrient.", "The molecule impacts aging."]


def test_an_answer_without_bullets_counts_each_line_and_hyphens_inside_facts_survive():
    assert parse_bullets(
        "The molecule is anti-viral.\n\nIt is a non-alcoholic fatty liver disease drug."
    ) == [
        "The molecule is anti-viral.",
        "It is a non-alcoholic fatty liver disease drug.",
    ]
    assert parse_bullets("- The molecule is a 1,2-diol.\n- The molecule is a beta-lactam.") == [
        "The molecule is a 1,2-diol.",
        "The molecule is a beta-lactam.",
    ]
    assert parse_bullets("") == []


def test_the_prompt_is_appendix_e_with_fig_11_as_one_shot_example():
    messages = messages_for("The molecule is a dye.")
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[-1]["content"].startswith(
        "Please breakdown the following text into independent facts:\nThe molecule is a dye."
    )
    assert "You should NOT include any prior knowledge" in messages[-1]["content"]
    assert EXAMPLE_TEXT in messages[0]["content"]
    assert len(parse_bullets(messages[1]["content"])) == 7
    assert len(messages_for("x", one_shot=False)) == 1


# --- the rules decomposer -------------------------------------------------------------------


def test_rules_decomposer_on_the_fig_11_example():
    assert decompose_rules(EXAMPLE_TEXT) == [
        "The molecule impacts atherosclerosis.",
        "The molecule impacts cardiovascular disease.",
        "The molecule is a nutrient.",
        "The molecule is a thyroxine treatment.",
        "The molecule is a fat storage.",
        "The molecule impacts pancreatitis.",
        "The molecule impacts metabolic syndrome.",
    ]


# Table 6's captions: the number of atoms the paper's LLM found and what the rules splitter finds
TABLE6 = [
    (
        "It impacts pancreatitis. The molecule is a fat storage and nutrient, belonging to the thyroxine "
        "treatment class of molecules, and impacts metabolic syndrome, atherosclerosis, and cardiovascular disease.",
        [
            "The molecule impacts pancreatitis.",
            "The molecule is a fat storage.",
            "The molecule is a nutrient.",
            "The molecule belongs to the thyroxine treatment class of molecules.",
            "The molecule impacts metabolic syndrome.",
            "The molecule impacts atherosclerosis.",
            "The molecule impacts cardiovascular disease.",
        ],
    ),
    ("The molecule is a nutrient.", ["The molecule is a nutrient."]),
    (
        "The molecule is a energy storage, a membrane stabilizer, and a energy source. The molecule is a "
        "surfactant, a emulsifier, and a nutrient.",
        [
            "The molecule is a energy storage.",
            "The molecule is a membrane stabilizer.",
            "The molecule is a energy source.",
            "The molecule is a surfactant.",
            "The molecule is a emulsifier.",
            "The molecule is a nutrient.",
        ],
    ),
    (
        "The molecule is a energy storage and is floral. The molecule is a emulsifier, nutrient, surfactant, "
        "energy source, membrane stabilizer, and rose.",
        [
            "The molecule is a energy storage.",
            "The molecule is floral.",
            "The molecule is a emulsifier.",
            "The molecule is a nutrient.",
            "The molecule is a surfactant.",
            "The molecule is an energy source.",
            "The molecule is a membrane stabilizer.",
            "The molecule is a rose.",
        ],
    ),
    (
        "The molecule is a cholesterol translocation, a apoptosis, and a stabilizing cytochrome oxidase, and "
        "it impacts tangier disease. The molecule is a stabilizing mitochondrial structure and a proton trap for "
        "oxidative phosphorylation that impacts barth syndrome, aging, and non-alcoholic fatty liver disease. "
        "It impacts diabetic heart disease.",
        [
            "The molecule is a cholesterol translocation.",
            "The molecule is a apoptosis.",
            "The molecule is a stabilizing cytochrome oxidase.",
            "The molecule impacts tangier disease.",
            "The molecule is a stabilizing mitochondrial structure.",
            "The molecule is a proton trap for oxidative phosphorylation.",
            "The molecule impacts barth syndrome.",
            "The molecule impacts aging.",
            "The molecule impacts non-alcoholic fatty liver disease.",
            "The molecule impacts diabetic heart disease.",
        ],
    ),
    (
        "It belongs to the anti viral class of molecules. The molecule is both a hepatitis c treatment and a hev inhibitor.",
        [
            "The molecule belongs to the anti viral class of molecules.",
            "The molecule is a hepatitis c treatment.",
            "The molecule is a hev inhibitor.",
        ],
    ),
    (
        "The molecule is a proton trap for oxidative phosphorylation and a cholesterol translocation, impacting "
        "both tangier disease and non-alcoholic fatty liver disease. It impacts both aging and barth syndrome.",
        [
            "The molecule is a proton trap for oxidative phosphorylation.",
            "The molecule is a cholesterol translocation.",
            "The molecule impacts tangier disease.",
            "The molecule impacts non-alcoholic fatty liver disease.",
            "The molecule impacts aging.",
            "The molecule impacts barth syndrome.",
        ],
    ),
]


@pytest.mark.parametrize("caption, atoms", TABLE6)
def test_rules_decomposer_on_table_6_and_fig_17_captions(caption, atoms):
    assert decompose_rules(caption) == atoms


def test_rules_decomposer_on_every_demo_template():
    assert decompose_rules(
        "The molecule is a phenol, ester, and small molecule that is aromatic and carries no net charge."
    ) == [
        "The molecule is a phenol.",
        "The molecule is an ester.",
        "The molecule is a small molecule.",
        "The molecule is aromatic.",
        "The molecule carries no net charge.",
    ]
    assert decompose_rules(
        "It is drug-like and has no hydrogen bond donors. The molecule is an ether and a cation."
    ) == [
        "The molecule is drug-like.",
        "The molecule has no hydrogen bond donors.",
        "The molecule is an ether.",
        "The molecule is a cation.",
    ]
    assert decompose_rules(
        "The molecule is a ketone that is hydrophilic. It is also a large molecule and an anion, is drug-like, "
        "and violates Lipinski's rule of five."
    ) == [
        "The molecule is a ketone.",
        "The molecule is hydrophilic.",
        "The molecule is a large molecule.",
        "The molecule is an anion.",
        "The molecule is drug-like.",
        "The molecule violates Lipinski's rule of five.",
    ]


def test_rules_decomposer_keeps_sentences_it_cannot_split_and_handles_empty_text():
    assert decompose_rules("Aspirin inhibits COX-1. ") == ["Aspirin inhibits COX-1."]
    assert decompose_rules("The molecule, a dye") == ["The molecule, a dye"]
    assert decompose_rules("   ") == []


def test_every_demo_caption_atom_is_a_wording_of_one_of_its_facts():
    """The demo NLI model learns these wordings, so the rules atoms of demo captions must be among them."""
    import random

    from molmix.demo_data import EXCLUSIVE, GROUPS, caption, exclusive_fact, group_fact
    from molmix.nli.train import fact_wordings

    rng = random.Random(0)
    for _ in range(300):
        facts = [group_fact(g) for g in rng.sample(sorted(GROUPS), rng.randrange(0, 4))]
        facts += [exclusive_fact(slot, rng.choice(sorted(values))) for slot, values in EXCLUSIVE.items()]
        text = caption(facts, rng)
        wordings = {w for fact in facts for w in fact_wordings(fact)}
        atoms = decompose_rules(text)
        assert len(atoms) == len(facts), text
        assert set(atoms) <= wordings, (text, set(atoms) - wordings)


# --- pooling ----------------------------------------------------------------------------------


def test_pooling_matches_hand_computed_matrices():
    # 2 generated atoms (rows of C) x 3 reference atoms; 3 reference atoms (rows of E) x 2 generated
    contradiction = np.array([[0.9, 0.2, 0.4], [0.1, 0.7, 0.05]])
    entailment = np.array([[0.8, 0.1], [0.3, 0.6], [0.2, 0.1]])
    hallucination, coverage = pool(contradiction, entailment)
    assert hallucination == pytest.approx((0.2 + 0.05) / 2)
    assert coverage == pytest.approx((0.8 + 0.6 + 0.2) / 3)


@pytest.mark.parametrize(
    "n_reference, matched, contradiction, hallucination, coverage",
    [
        (7, 1, 0.0, 0.00, 0.14),  # Table 6 row 1: seven premises, the one hypothesis entails one of them
        (1, 0, 0.75, 0.75, 0.00),  # row 3: orexin receptor antagonist vs anti viral
        (11, 10, 0.0, 0.00, 0.91),  # row 4: ten of eleven premises covered
    ],
)
def test_table_6_structure(n_reference, matched, contradiction, hallucination, coverage):
    n_generated = max(matched, 1)
    C = np.full((n_generated, n_reference), 0.9)
    C[:, 0] = contradiction  # each generated atom has one non-contradicting premise
    E = np.zeros((n_reference, n_generated))
    for i in range(matched):
        E[i, i] = 1.0
    h, c = pool(C, E)
    assert round(h, 2) == hallucination and round(c, 2) == coverage


def test_unsupported_sees_an_invented_atom_that_eq_6_cannot():
    """A generated atom neutral to every reference atom is information the reference does not state:
    Eq. 6 (min contradiction) gives 0, unsupported (1 - max entailment) gives 1."""
    from molmix.nli.atomic import unsupported

    references, predictions = [["A", "B"]], [["A", "Y"]]  # Y: stated nowhere, contradicts nothing
    per_item = score_units(references, predictions, PairScorer(StubModel()))
    assert per_item["hallucination"][0] == 0.0 and per_item["unsupported"][0] == pytest.approx(0.5)
    support = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.4]])  # 2 generated x 3 reference
    assert unsupported(support) == pytest.approx(((1 - 0.9) + (1 - 0.4)) / 2)
    assert math.isnan(unsupported(np.zeros((0, 3)))) and math.isnan(unsupported(np.zeros((2, 0))))


def test_summac_pooling_is_max_of_entailment_minus_contradiction_averaged():
    """SummaC-ZS (Laban et al., 2022), read as coverage: per reference sentence, max over generated
    sentences of P(ent) - P(con), then the mean."""
    from molmix.nli.atomic import summac_coverage

    entailment = np.array([[0.8, 0.1], [0.2, 0.3]])  # 2 reference x 2 generated
    refutation = np.array([[0.1, 0.0], [0.7, 0.1]])
    assert summac_coverage(entailment, refutation) == pytest.approx((0.7 + 0.2) / 2)
    assert summac_coverage(np.zeros((2, 0)), np.zeros((2, 0))) == 0.0
    assert math.isnan(summac_coverage(np.zeros((0, 2)), np.zeros((0, 2))))
    per_item = score_units([["A", "B"]], [["A", "X"]], PairScorer(StubModel({("X", "B")})), "summac")
    # A: entailed by A (1 - 0); B: entailed by nothing, contradicted by X -> max(0 - 0, 0 - 1) = 0
    assert per_item["coverage"][0] == pytest.approx(0.5) and math.isnan(per_item["hallucination"][0])


def test_empty_decompositions_are_defined():
    assert pool(np.zeros((0, 3)), np.zeros((3, 0))) == (pytest.approx(float("nan"), nan_ok=True), 0.0)
    h, c = pool(np.zeros((2, 0)), np.zeros((0, 2)))
    assert math.isnan(h) and math.isnan(c)


class StubModel:
    """An NLI model from a table: P(entailment) 1 for equal texts, P(contradiction) 1 for listed pairs."""

    name = key = "stub"
    batch_size = 64

    def __init__(self, contradictions=()):
        self.contradictions = set(contradictions)
        self.calls = 0
        self.pairs = 0

    def predict(self, pairs, progress=False):
        self.calls += 1
        self.pairs += len(pairs)
        out = np.zeros((len(pairs), 3))
        for row, (p, h) in enumerate(pairs):
            label = (
                "entailment" if p == h else "contradiction" if (p, h) in self.contradictions else "neutral"
            )
            out[row, LABELS.index(label)] = 1.0
        return out


def test_score_units_scores_each_distinct_pair_once_and_counts_empty_items():
    model = StubModel(contradictions={("A", "X")})
    references = [["A", "B"], ["A", "B"], ["A"], []]
    predictions = [["A", "X"], ["A", "X"], [], ["A"]]
    per_item = score_units(references, predictions, PairScorer(model))
    assert model.calls == 1 and model.pairs == len(
        {("A", "A"), ("A", "X"), ("X", "A"), ("B", "A"), ("A", "B"), ("B", "X"), ("X", "B")}
    )
    first = per_item.iloc[0]
    assert first["hallucination"] == pytest.approx(0.0)  # X contradicts A but not B: min is 0
    assert first["coverage"] == pytest.approx(0.5)  # A covered, B not
    assert first["unsupported"] == pytest.approx(0.5)  # no reference atom states X
    assert first["coverage_match"] == [0, 0] and first["hallucination_match"] == [0, 1]
    assert per_item.iloc[2]["coverage"] == 0.0 and math.isnan(per_item.iloc[2]["hallucination"])
    assert math.isnan(per_item.iloc[2]["unsupported"])
    assert per_item.iloc[3]["no_reference_units"] and math.isnan(per_item.iloc[3]["coverage"])
    summary = summarize(per_item)
    assert summary == {
        "hallucination": 0.0,
        "unsupported": pytest.approx(0.5),
        "coverage": pytest.approx((0.5 + 0.5 + 0.0) / 3),
        "n": 4,
        "n_empty": 1,
        "n_no_reference": 1,
    }


def test_pair_cache_makes_a_second_run_call_no_model(tmp_path):
    from molmix.nli.atomic import pair_store

    references, predictions = [["A", "B"]], [["B", "C"]]
    first = StubModel()
    expected = score_units(references, predictions, PairScorer(first, pair_store(tmp_path)))
    second = StubModel()
    again = score_units(references, predictions, PairScorer(second, pair_store(tmp_path)))
    assert first.pairs == 7 and second.calls == 0  # (B, B) is needed twice, scored once
    pd.testing.assert_frame_equal(expected, again)


class BatchSensitiveModel(StubModel):
    """A stub whose probabilities move with the batch's size, as padded float kernels' last bits do."""

    def predict(self, pairs, progress=False):
        return (super().predict(pairs) + len(pairs) * 1e-6) / (1 + 3 * len(pairs) * 1e-6)


def test_a_job_never_reuses_pairs_another_job_scored_in_other_batches(tmp_path):
    """Two systems scored in parallel share the cache: each one's numbers must not depend on which ran first."""
    from molmix.nli.atomic import pair_store

    alone = PairScorer(BatchSensitiveModel()).probabilities([("A", "A")])[("A", "A")]
    PairScorer(BatchSensitiveModel(), pair_store(tmp_path)).probabilities([("A", "A"), ("A", "B")])
    model = BatchSensitiveModel()
    assert np.array_equal(
        PairScorer(model, pair_store(tmp_path)).probabilities([("A", "A")])[("A", "A")], alone
    )
    assert model.calls == 1
    rerun = BatchSensitiveModel()  # the same job again finds its own pairs
    assert np.array_equal(
        PairScorer(rerun, pair_store(tmp_path)).probabilities([("A", "A")])[("A", "A")], alone
    )
    assert rerun.calls == 0


def test_a_shard_killed_mid_write_is_ignored(tmp_path):
    store = ParquetStore(tmp_path, ("key",), ("value",))
    store.add([{"key": "a", "value": 1.0}])
    (tmp_path / ".deadbeef.parquet.x1.tmp").write_bytes(b"PAR1 half a file")  # what a SIGKILL leaves
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")  # a damaged shard is skipped, not fatal
    assert ParquetStore(tmp_path, ("key",), ("value",)).lookup([("a",), ("b",)]) == {("a",): 1.0}


def test_decomposition_cache_skips_the_backend_on_the_second_run(tmp_path):
    from molmix.nli.steps import decomposition_store

    calls = []

    def backend(texts):
        calls.append(list(texts))
        return [decompose_rules(t) for t in texts]

    cfg = {"backend": "rules"}
    texts = ["It is a dye and a drug.", "It is a dye and a drug.", "The molecule is a salt."]
    first = decompose(texts, cfg, decomposition_store(tmp_path), decomposer=backend)
    second = decompose(texts, cfg, decomposition_store(tmp_path), decomposer=backend)
    assert calls == [["It is a dye and a drug.", "The molecule is a salt."]]
    assert (
        first
        == second
        == [["The molecule is a dye.", "The molecule is a drug."]] * 2 + [["The molecule is a salt."]]
    )


def test_unknown_backend_is_an_error_naming_the_key():
    with pytest.raises(DecompositionError, match="nli.decomposer.backend"):
        decompose(["x"], {"backend": "magic"}, None)


# --- label mapping ----------------------------------------------------------------------------


def test_label_indices_for_both_label_orders_and_generic_names():
    cross_encoder = {0: "contradiction", 1: "entailment", 2: "neutral"}
    moritz = {0: "entailment", 1: "neutral", 2: "contradiction"}
    assert label_indices(cross_encoder, "m") == {"contradiction": 0, "entailment": 1, "neutral": 2}
    assert label_indices(moritz, "m") == {"entailment": 0, "neutral": 1, "contradiction": 2}
    assert label_indices({"0": "ENTAILMENT", "1": "NEUTRAL", "2": "CONTRADICTION"}, "m")["contradiction"] == 2
    with pytest.raises(NLIModelError, match="LABEL_0"):
        label_indices({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, "some/model")


@pytest.fixture(scope="module")
def two_label_orders(tmp_path_factory):
    """One random tiny NLI model saved twice: cross-encoder label order and MoritzLaurer's order."""
    import torch

    from molmix.nli.train import ID2LABEL, build_model, train_tokenizer

    root = tmp_path_factory.mktemp("orders")
    tokenizer = train_tokenizer(["The molecule is a phenol.", "It is small and aromatic."], 64)
    model = build_model(
        tokenizer,
        {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
        64,
        0,
    )
    model.save_pretrained(root / "cross")
    tokenizer.save_pretrained(root / "cross")
    order = ["entailment", "neutral", "contradiction"]
    old_index = {label: index for index, label in ID2LABEL.items()}
    permutation = [old_index[label] for label in order]
    with torch.no_grad():
        model.classifier.weight.copy_(model.classifier.weight[permutation].clone())
        model.classifier.bias.copy_(model.classifier.bias[permutation].clone())
    model.config.id2label = dict(enumerate(order))
    model.config.label2id = {label: i for i, label in enumerate(order)}
    model.save_pretrained(root / "moritz")
    tokenizer.save_pretrained(root / "moritz")
    return root


def test_probabilities_do_not_depend_on_the_model_label_order(two_label_orders):
    from molmix.nli.model import NLIModel

    pairs = [("The molecule is a phenol.", "It is small."), ("It is aromatic.", "The molecule is a phenol.")]
    cross = NLIModel(two_label_orders / "cross").predict(pairs)
    moritz = NLIModel(two_label_orders / "moritz").predict(pairs)
    np.testing.assert_allclose(cross, moritz, atol=1e-6)
    np.testing.assert_allclose(cross.sum(axis=1), 1.0)


def test_batched_padded_scoring_equals_one_pair_at_a_time(two_label_orders):
    from molmix.nli.model import NLIModel

    pairs = [
        ("The molecule is a phenol.", "It is small."),
        ("It is aromatic and small and a phenol.", "It."),
    ] * 3
    batched = NLIModel(two_label_orders / "cross", batch_size=4).predict(pairs)
    single = np.vstack([NLIModel(two_label_orders / "cross", batch_size=1).predict([pair]) for pair in pairs])
    np.testing.assert_allclose(batched, single, atol=1e-5)


# --- baselines and KL ---------------------------------------------------------------------------


def test_baseline_units():
    text = "It impacts aging. The molecule is a nutrient that impacts diabetes."
    assert baseline_units("full", [text, " "]) == [[text], []]
    assert baseline_units("sentence", [text]) == [
        ["It impacts aging.", "The molecule is a nutrient that impacts diabetes."]
    ]
    with pytest.raises(ValueError, match="unknown NLI baseline"):
        baseline_units("paragraph", [text])


def test_kl_divergence_of_histograms():
    assert histogram([0.0, 0.05, 0.95, 1.0], bins=2, smoothing=0.0).tolist() == [0.5, 0.5]
    assert kl_divergence([0.1, 0.2], [0.1, 0.2], 10, 1.0) == pytest.approx(0.0)
    p = histogram([0.9] * 10, 2, 1.0)
    q = histogram([0.1] * 10, 2, 1.0)
    assert kl_divergence([0.9] * 10, [0.1] * 10, 2, 1.0) == pytest.approx(float(np.sum(p * np.log(p / q))))
    assert math.isnan(kl_divergence([], [0.5], 10, 1.0))


def test_compare_methods_on_all_and_long_captions():
    ids = pd.Index(["a", "b", "c", "d"])
    words = pd.Series([10, 60, 80, 55], index=ids)
    coverage = {
        "atomic": {
            "good": pd.Series([0.9, 0.8, 1.0, 0.9], index=ids),
            "bad": pd.Series([0.1, 0.2, 0.1, float("nan")], index=ids),
        },
        "full": {"good": pd.Series([0.5] * 4, index=ids), "bad": pd.Series([0.5] * 4, index=ids)},
    }
    table = compare_methods(coverage, "good", "bad", words, [50, 70], bins=10, smoothing=1.0).set_index(
        ["method", "subset"]
    )
    assert table.loc[("atomic", "all"), "n"] == 3  # d has no coverage for "bad"
    assert table.loc[("atomic", ">=70 words"), "n"] == 1
    assert table.loc[("atomic", "all"), "kl"] > 0.1 and table.loc[("atomic", "all"), "favours_preferred"]
    assert table.loc[("full", ">=50 words"), "kl"] == pytest.approx(0.0)
    assert table.loc[("full", "all"), "favours_preferred"] is None  # 0.5 vs 0.5: neither


def test_summac_coverage_is_binned_over_its_own_range():
    """SummaC-ZS coverage lies in [-1, 1]: clipping it to [0, 1] would make every negative score one bin."""
    ids = pd.Index(["a", "b", "c"])
    words = pd.Series([10, 10, 10], index=ids)
    coverage = {
        "summac": {"good": pd.Series([-0.1] * 3, index=ids), "bad": pd.Series([-0.9] * 3, index=ids)},
        "full": {"good": pd.Series([-0.1] * 3, index=ids), "bad": pd.Series([-0.9] * 3, index=ids)},
    }
    table = compare_methods(coverage, "good", "bad", words, [], bins=10, smoothing=1.0).set_index("method")
    assert table.loc["summac", "kl"] > 0.3 and table.loc["full", "kl"] == pytest.approx(0.0)


def test_rank_agreement_of_nli_coverage_with_caption_metrics():
    from molmix.nli.kl import rank_agreement

    means = pd.DataFrame(
        {
            "system": ["a", "b", "c", "d"] * 2,
            "method": ["atomic"] * 4 + ["full"] * 4,
            "coverage": [0.9, 0.7, 0.5, 0.1, 0.0, 0.0, 0.1, 0.2],
        }
    )
    metrics = pd.DataFrame(
        {"bleu4": [0.8, 0.6, 0.3, 0.1], "rougeL": [0.7, 0.8, 0.4, 0.2]}, index=["a", "b", "c", "d"]
    )
    ranks = rank_agreement(means, metrics).set_index(["method", "metric"])
    assert ranks.loc[("atomic", "bleu4"), "spearman"] == pytest.approx(1.0)
    assert ranks.loc[("atomic", "rougeL"), "spearman"] == pytest.approx(0.8)
    assert ranks.loc[("full", "bleu4"), "spearman"] < 0 and ranks.loc[("full", "bleu4"), "n_systems"] == 4


# --- the openai backend against a local fake server ---------------------------------------------


def test_openai_backend_against_a_local_server():
    """Requests carry the Appx. E messages; an answer the server stopped for length is flagged truncated."""
    from molmix.nli.decompose import Decomposition, make_decomposer

    requests = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append(body)
            text = body["messages"][-1]["content"].split("\n")[1]
            answer = "Here you go:\n" + "\n".join(
                f"{i}. {fact}" for i, fact in enumerate(decompose_rules(text), 1)
            )
            payload = json.dumps(
                {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "length" if "salt" in text else "stop",
                            "message": {"role": "assistant", "content": answer},
                        }
                    ],
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = {
            "backend": "openai",
            "max_new_tokens": 64,
            "one_shot": True,
            "openai": {
                "url": f"http://127.0.0.1:{server.server_port}/v1",
                "model": "llama",
                "timeout": 10,
                "max_retries": 0,
            },
        }
        assert make_decomposer(cfg)(["It is a dye and a drug.", "It is a salt."]) == [
            Decomposition(["The molecule is a dye.", "The molecule is a drug."], truncated=False),
            Decomposition(["The molecule is a salt."], truncated=True),
        ]
        assert (
            requests[0]["model"] == "llama"
            and requests[0]["temperature"] == 0.0
            and len(requests[0]["messages"]) == 3
        )
    finally:
        server.shutdown()
    cfg["openai"]["url"] = "http://127.0.0.1:9/v1"  # nothing listens there
    with pytest.raises(DecompositionError, match="127.0.0.1:9"):
        make_decomposer(cfg)(["It is a dye."])


# --- the LLM decomposer and the stand-alone command -----------------------------------------

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def chat_model(tiny, tmp_path_factory):
    """The tiny random Llama with a chat template, standing in for Llama-3-8B-Instruct."""
    from molmix import lm

    path = tmp_path_factory.mktemp("chat") / "llama"
    lm.load_causal_lm(tiny / "base").save_pretrained(path)
    tokenizer = lm.load_tokenizer(tiny / "tok")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
    return path


def test_llm_decomposer_prompts_through_the_chat_template_and_batches_like_single_calls(chat_model):
    from molmix.nli.decompose import LLMDecomposer

    texts = ["The molecule is a phenol.", "It is a small aromatic dye that impacts aging and diabetes."]
    decomposer = LLMDecomposer(str(chat_model), batch_size=2, max_new_tokens=6, one_shot=True)
    prompt = decomposer.prompt(texts[0])
    assert prompt.endswith("<|assistant|>") and prompt.count("<|user|>") == 2  # Fig. 11's example first
    assert EXAMPLE_TEXT in prompt and texts[0] in prompt.rsplit("<|user|>", 1)[1]
    prompts = [decomposer.prompt(text) for text in texts]
    # left padding: the shorter prompt's greedy answer does not change when batched with a longer one
    assert decomposer.generate(prompts) == [decomposer.generate([p])[0] for p in prompts]
    assert len(decomposer(texts)) == 2


def test_an_llm_answer_cut_off_at_max_new_tokens_is_flagged_and_one_that_ends_is_not(chat_model):
    from molmix.nli.decompose import LLMDecomposer

    decomposer = LLMDecomposer(str(chat_model), batch_size=2, max_new_tokens=16, one_shot=False)
    prompts = [decomposer.prompt("The molecule is a phenol."), decomposer.prompt("It is a dye.")]
    # the random tiny model never produces an end token: both answers stop at the limit
    assert [answer.truncated for answer in decomposer.generate(prompts)] == [True, True]
    assert all(item.truncated for item in decomposer(["The molecule is a phenol.", "It is a dye."]))
    # make the first token it generates the end token: the answer ends there, before the limit
    inputs = decomposer.tokenizer(prompts[:1], return_tensors="pt", add_special_tokens=False)
    first = decomposer.model.generate(**inputs, do_sample=False, max_new_tokens=1)[0, -1].item()
    decomposer.model.generation_config.eos_token_id = first
    assert [answer.truncated for answer in decomposer.generate(prompts[:1])] == [False]


def test_cut_off_needs_the_limit_reached_without_an_end_token():
    from molmix.nli.decompose import cut_off

    end = {2}
    # row 1 ended (end token, then padding with it); row 2 ran to the limit; row 3 ended on the last token
    assert cut_off([[5, 2, 2, 2], [5, 6, 7, 8], [5, 6, 7, 2]], end, 4) == [False, True, False]
    assert cut_off([[5, 6]], end, 4) == [False]  # the batch stopped early: every row ended


def test_the_truncation_flag_is_cached_with_the_facts(tmp_path):
    from molmix.nli.decompose import Decomposition, decompose_items
    from molmix.nli.steps import decomposition_store

    calls = []

    def backend(texts):
        calls.append(list(texts))
        return [Decomposition(["The molecule is long."], truncated="long" in t) for t in texts]

    cfg = {"backend": "llm", "model": "m", "max_new_tokens": 16, "one_shot": True, "batch_size": 2}
    texts = ["A long caption.", "A short one."]
    first = decompose_items(texts, cfg, decomposition_store(tmp_path), decomposer=backend)
    second = decompose_items(texts, cfg, decomposition_store(tmp_path), decomposer=backend)
    assert len(calls) == 1 and first == second
    assert [item.truncated for item in second] == [True, False]
    # batched greedy answers depend on the batch: another call's texts are decoded in their own batches
    decompose_items(texts[1:], cfg, decomposition_store(tmp_path), decomposer=backend)
    assert calls[1:] == [texts[1:]]
    # a plain list of facts from a custom decomposer counts as not truncated
    plain = decompose_items(["x."], {"backend": "rules"}, None, decomposer=lambda t: [["The molecule is x."]])
    assert plain == [Decomposition(["The molecule is x."], truncated=False)]


def test_truncated_decompositions_are_flagged_per_item_and_counted_in_every_nli_summary(
    two_label_orders, tmp_path
):
    from molmix.artifacts import read_artifact, read_metadata, write_artifact
    from molmix.nli.steps import decompose_step, score_step

    test = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "smiles": ["C", "CC", "CCC"],
            "caption": ["The molecule is a phenol.", "It is small.", "It is aromatic."],
            "category": [None] * 3,
        }
    )
    write_artifact(test, tmp_path / "test.parquet", "pairs")
    generations = test.rename(columns={"smiles": "input", "caption": "reference"}).assign(
        task="mol2cap", model="sys", prediction=["The molecule is a phenol.", "It is large.", ""]
    )
    write_artifact(generations.drop(columns="category"), tmp_path / "gen.parquet", "generations")
    rules = {"backend": "rules", "max_new_tokens": 600}
    decompose_step(tmp_path / "test.parquet", "reference", rules, None, None, tmp_path / "ref_atoms.parquet")
    decompose_step(tmp_path / "gen.parquet", "prediction", rules, None, None, tmp_path / "atoms.parquet")
    atoms = read_artifact(tmp_path / "atoms.parquet", "atoms")
    assert list(atoms["truncated"]) == [False] * 3  # the rules backend never truncates
    assert read_metadata(tmp_path / "atoms.parquet")["n_truncated"] == 0
    # as an llm decomposer would have written it: item b's answer was cut off
    write_artifact(atoms.assign(truncated=[False, True, False]), tmp_path / "atoms.parquet", "atoms")

    outputs = {m: (tmp_path / f"{m}.parquet", tmp_path / f"{m}.json") for m in ("atomic", "full", "sentence")}
    score_step(
        tmp_path / "gen.parquet",
        tmp_path / "ref_atoms.parquet",
        tmp_path / "atoms.parquet",
        two_label_orders / "cross",
        {"batch_size": 8, "max_length": 64},
        None,
        outputs,
    )
    for method, (_, summary) in outputs.items():
        counts = json.loads(summary.read_text())
        assert counts["n_decomposition_truncated"] == 1, method
        assert counts["n_reference_decomposition_truncated"] == 0, method


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_nli_command_on_caption_files(two_label_orders, chat_model, tmp_path, capsys):
    from molmix.cli import main

    references = write_lines(
        tmp_path / "refs.txt", ["The molecule is a phenol. It is small.", "The molecule is aromatic."] * 2
    )
    predictions = write_lines(
        tmp_path / "preds.txt", ["The molecule is a phenol.", "", "It is small.", "The molecule is aromatic."]
    )
    common = [
        "--nli-model",
        str(two_label_orders / "cross"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--threads",
        "1",
    ]
    args = ["nli", "--references", references, "--predictions", predictions, "--baselines", *common]
    assert (
        main([*args, "--json", str(tmp_path / "out.json"), "--per-item", str(tmp_path / "items.parquet")])
        == 0
    )
    summary = json.loads(tmp_path.joinpath("out.json").read_text())
    assert json.loads(capsys.readouterr().out) == summary
    assert summary["n"] == 4 and summary["n_empty"] == 1 and 0 <= summary["coverage"] <= 1
    assert set(summary["full"]) >= {"hallucination", "coverage"} and "sentence" in summary
    items = pd.read_parquet(tmp_path / "items.parquet")
    assert len(items) == 4 and items["coverage"][1] == 0.0 and list(items["prediction_atoms"][1]) == []
    assert list(items["reference_atoms"][0]) == ["The molecule is a phenol.", "The molecule is small."]

    llm = ["--decomposer", "llm", "--decomposer-model", str(chat_model), "--max-new-tokens", "6"]
    assert main(["nli", "--references", references, "--predictions", predictions, *llm, *common]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 4

    long = write_lines(tmp_path / "long.txt", ["The molecule is a phenol. " * 1000] * 4)
    assert main(["nli", "--references", references, "--predictions", long, *common]) == 2
    assert "long.txt: the prediction of pair 1 is longer than 20,000 characters" in capsys.readouterr().err

    short = write_lines(tmp_path / "short.txt", ["The molecule is a phenol."])
    assert main(["nli", "--references", references, "--predictions", short, *common]) == 2
    assert "short.txt has 1" in capsys.readouterr().err

    # pairs longer than --max-length are truncated when scored: the output counts them
    assert main([*args, "--max-length", "8"]) == 0
    truncated = json.loads(capsys.readouterr().out)
    assert (
        truncated["n_truncated"] > 0 and truncated["full"]["n_truncated"] > 0 and summary["n_truncated"] == 0
    )

    # a folder that is no NLI model, and a path that does not exist: clear errors, no traceback
    pairs = ["nli", "--references", references, "--predictions", predictions, "--no-cache"]
    tokenizer_only = tmp_path / "tokenizer"
    tokenizer_only.mkdir()
    for file in chat_model.glob("tokenizer*"):
        shutil.copy(file, tokenizer_only)
    assert main([*pairs, "--nli-model", str(tokenizer_only)]) == 2
    assert (
        f"{tokenizer_only}: cannot be loaded as a sequence-classification NLI model"
        in capsys.readouterr().err
    )
    assert main([*pairs, "--nli-model", str(tmp_path / "absent")]) == 2
    assert f"{tmp_path / 'absent'}: no such model folder" in capsys.readouterr().err


def test_a_blank_caption_has_no_facts_and_never_reaches_the_backend():
    from molmix.nli.decompose import decompose_items

    seen = []

    def backend(texts):
        seen.extend(texts)
        return [["invented fact"] for _ in texts]

    cfg = {
        "backend": "llm",
        "model": "stand-in",
        "max_new_tokens": 600,
        "batch_size": 8,
        "one_shot": True,
        "openai": {},
    }
    items = decompose_items(["A fact.", "  ", ""], cfg, None, decomposer=backend)
    assert seen == ["A fact."] and [i.atoms for i in items] == [["invented fact"], [], []]
    assert [i.atoms for i in decompose_items(["", " "], cfg, None, decomposer=backend)] == [[], []]


def test_rank_step_orders_systems_by_nli_coverage_and_by_caption_metrics(tmp_path):
    """results/nli/<dataset>/ranks.*: Spearman's rho per method and metric; a system not run is left out."""
    from molmix.nli.steps import rank_step
    from molmix.scoring.core import SUMMARY_KEYS

    summaries, scores = {}, {}
    for rank, system in enumerate(["best", "good", "poor", "worst"]):
        for method, coverage in (("atomic", 0.9 - 0.2 * rank), ("full", 0.1 * rank)):
            summaries[f"{method}__{system}"] = tmp_path / f"{method}__{system}.json"
            summaries[f"{method}__{system}"].write_text(json.dumps({"coverage": coverage}))
        scores[system] = tmp_path / f"{system}.json"
        scores[system].write_text(json.dumps(dict.fromkeys(SUMMARY_KEYS["mol2cap"], 0.8 - 0.2 * rank)))
    for method in ("atomic", "full"):
        summaries[f"{method}__chemllm"] = tmp_path / f"{method}__chemllm.json"
        summaries[f"{method}__chemllm"].write_text(json.dumps({"n": 0, "failed": "not a model folder"}))
    scores["chemllm"] = tmp_path / "chemllm.json"
    scores["chemllm"].write_text("{}")
    ranks = rank_step(summaries, scores, *(tmp_path / f"ranks.{ext}" for ext in ("csv", "md", "html")))
    ranks = ranks.set_index(["method", "metric"])
    assert ranks.loc[("atomic", "bleu4"), "spearman"] == pytest.approx(1.0)
    assert ranks.loc[("full", "rougeL"), "spearman"] == pytest.approx(-1.0)
    assert (ranks["n_systems"] == 4).all()
    assert (
        "| atomic" in (tmp_path / "ranks.md").read_text()
        and "<caption>" in (tmp_path / "ranks.html").read_text()
    )
    assert len(pd.read_csv(tmp_path / "ranks.csv")) == 2 * len(SUMMARY_KEYS["mol2cap"])
