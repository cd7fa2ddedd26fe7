"""The demo run's NLI model meets the issue's checks; it trains as it should (labels, tokenizer, resuming after a
kill); the NLI rules run on it."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, TEXT_ACCURACY_BAR, assert_baselines_tell_captions_apart, run_snakemake
from molmix.artifacts import read_artifact, write_artifact
from molmix.config import load_config
from molmix.demo_data import build_demo_dataset
from molmix.names import NLI_METHODS

pytestmark = pytest.mark.slow

SYSTEMS = ("slerp+cpo", "pertask")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The embedded default's demo dataset (train split written as the raw file the rule reads)."""
    root = tmp_path_factory.mktemp("nli-demo")
    config = load_config(REPO / "config.yaml")  # the schema's defaults too, as the rule gets them
    data = build_demo_dataset(**config["dataset"]["demo"], seed=config["seed"])
    for split in ("train", "test"):
        frame = data[data["split"] == split].drop(columns="split").reset_index(drop=True)
        write_artifact(frame, root / f"{split}.parquet", "pairs")
    return root, config


@pytest.fixture(scope="module")
def nli_model(demo_run):
    """The demo run's NLI model, trained by the ``train_nli_model`` rule, and the metrics it wrote."""
    models = demo_run / "results/models/demo"
    return models / "nli", json.loads((models / "nli.metrics.json").read_text())


@pytest.fixture(scope="module")
def checks(nli_model):
    """Every NLI method on held-out test captions, as training reports them (:func:`caption_checks`)."""
    return nli_model[1]["captions"]


@pytest.mark.e2e  # the demo run's model
def test_held_out_accuracy_is_reported_and_high(nli_model):
    model_dir, metrics = nli_model
    assert metrics["heldout"]["n"] > 100
    assert metrics["label_order"] == ["contradiction", "entailment", "neutral"]
    assert metrics["heldout"]["accuracy"] >= 0.85
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["DebertaV2ForSequenceClassification"]


@pytest.mark.e2e  # the demo run's model
def test_caption_against_itself_and_against_an_unrelated_one(checks):
    """The issues' checks on held-out captions: atomic self coverage >= 0.9, hallucination and unsupported
    <= 0.1, unrelated coverage <= 0.3; every method's numbers are reported."""
    assert checks["n"] >= 30 and set(NLI_METHODS) <= set(checks)
    atomic = checks["atomic"]
    assert atomic["self_coverage"] >= 0.9
    assert atomic["self_hallucination"] <= 0.1 and atomic["self_unsupported"] <= 0.1
    assert atomic["unrelated_coverage"] <= 0.3
    # coverage tracks the true share of reference facts the other caption states
    assert atomic["unrelated_coverage_error"] <= 0.15


@pytest.mark.e2e  # the demo run's model
def test_unsupported_sees_what_the_reference_does_not_state_and_eq_6_does_not(checks):
    """Captions scored against shifted references (the next caption's): unsupported comes within 0.1 of
    the true share of their facts that reference does not state; Eq. 6's hallucination stays near 0."""
    atomic = checks["atomic"]
    assert checks["shifted_unstated_share"] > 0.3
    assert abs(atomic["shifted_unsupported"] - checks["shifted_unstated_share"]) <= 0.1
    assert atomic["shifted_unsupported_error"] <= 0.15
    assert atomic["shifted_hallucination"] < 0.1


@pytest.mark.e2e  # the demo run's model
def test_the_baselines_judge_captions_and_sentences_of_several_facts(nli_model, checks):
    """The second training stage: held-out caption and sentence pairs above chance (1/3), and each
    baseline covers a caption by itself more than by the caption sharing the fewest facts with it."""
    assert nli_model[1]["heldout_texts"]["balanced_accuracy"] >= TEXT_ACCURACY_BAR
    assert_baselines_tell_captions_apart(checks)


def test_text_pairs_are_labelled_by_the_facts_each_side_states(demo):
    """Held-out caption and sentence pairs: a part of a caption is entailed, one changed exclusive value
    contradicts, a group the premise does not state is neutral."""
    from molmix.demo_data import all_facts, exclusive_fact
    from molmix.nli.train import molecules_in_split, relation, text_pairs

    root, config = demo
    molecules = molecules_in_split(read_artifact(root / "test.parquet", "pairs"), "test")
    facts = molecules[0]
    changed = next(f for f in facts if f.exclusive and f.slot == "size")
    other_size = exclusive_fact("size", next(v for v in ("small", "medium", "large") if v != changed.value))
    extra = next(f for f in all_facts() if not f.exclusive and f not in facts)
    assert relation(facts, facts[:3]) == "entailment"
    assert relation(facts, [other_size if f == changed else f for f in facts]) == "contradiction"
    assert relation(facts, [*facts, extra]) == "neutral"
    pairs = text_pairs(molecules, 20, config["seed"])
    assert pairs["label"].value_counts().to_dict() == {"entailment": 20, "neutral": 20, "contradiction": 20}


def test_every_molecule_gives_a_caption_and_a_sentence_that_entail_themselves(demo):
    """The second stage's self pairs: per molecule a whole caption and a single sentence of one, each paired
    with itself and labelled entailment, as the facts they state make them."""
    from molmix.nli.baselines import sentence_units
    from molmix.nli.train import facts_by_wording, molecules_in_split, self_pairs, text_facts

    root, config = demo
    molecules = molecules_in_split(read_artifact(root / "train.parquet", "pairs"), "train")[:50]
    pairs = self_pairs(molecules, config["seed"])
    assert (pairs["premise"] == pairs["hypothesis"]).all() and set(pairs["label"]) == {"entailment"}
    assert 90 <= len(pairs) <= 100  # a caption and a sentence per molecule, minus repeats
    by_wording = facts_by_wording()
    stated = [text_facts(text, by_wording) for text in pairs["premise"]]
    whole = [frozenset(facts) for facts in molecules]
    assert all(facts and any(facts <= m for m in whole) for facts in stated)  # a molecule's, in part
    assert sum(facts in whole for facts in stated) >= len(molecules)  # each caption states all of them
    assert any(len(sentence_units(text)) > 1 for text in pairs["premise"])  # whole two-sentence captions
    assert pairs.equals(self_pairs(molecules, config["seed"]))


@pytest.mark.e2e  # the demo run's model
def test_nli_rules_on_hand_made_generations_and_a_cached_second_run(tmp_path, demo, nli_model, write_config):
    root, _ = demo
    test = read_artifact(root / "test.parquet", "pairs").head(30)
    write_artifact(test, tmp_path / "results/data/demo/test.parquet", "pairs")
    shutil.copytree(nli_model[0], tmp_path / "results/models/demo/nli")
    rotated = list(test["caption"][1:]) + [test["caption"][0]]
    outputs = {"slerp+cpo": list(test["caption"]), "pertask": ["", *rotated[1:]]}
    for system, predictions in outputs.items():
        frame = pd.DataFrame(
            {
                "id": test["id"],
                "task": "mol2cap",
                "input": test["smiles"],
                "reference": test["caption"],
                "prediction": predictions,
                "model": system,
            }
        )
        write_artifact(frame, tmp_path / f"results/generations/demo/{system}/mol2cap.parquet", "generations")
    config = write_config(
        {
            "baselines": {"pertask": {"mol2cap": "pertask", "cap2mol": "pertask"}},
            "align.runs": [{"init": "slerp", "methods": ["cpo"]}],
            "tables": {},
            "figures.merge_comparison": {},
            "nli.compare.systems": list(SYSTEMS),
        }
    )
    nli_rules = (
        "decompose_references",
        "decompose_captions",
        "score_nli",
        "compare_nli_methods",
    )
    targets = ["results/nli/demo/kl.csv", "results/nli/demo/summary.md"]
    run_snakemake(tmp_path, *targets, "--allowed-rules", *nli_rules, configfile=config)

    good = json.loads((tmp_path / "results/nli/demo/slerp+cpo/atomic.json").read_text())
    bad = json.loads((tmp_path / "results/nli/demo/pertask/atomic.json").read_text())
    assert good["n"] == bad["n"] == 30 and good["n_empty"] == 0 and bad["n_empty"] == 1
    scores = read_artifact(tmp_path / "results/nli/demo/pertask/atomic.parquet", "nli_scores")
    assert scores["coverage"][0] == 0.0 and np.isnan(scores["hallucination"][0])
    assert len(scores["entailment"][1]) == len(scores["reference_atoms"][1])
    kl = pd.read_csv(tmp_path / "results/nli/demo/kl.csv")
    assert set(kl["method"]) == set(NLI_METHODS) and (kl["kl"] >= 0).all()
    assert set(kl["subset"]) == {"all", ">=30 words", ">=40 words"}
    assert (tmp_path / "results/nli/demo/figures/atomic_scores.png").exists()

    # a second run (forced) finds every decomposition and pair in the cache: no model calls
    run_snakemake(
        tmp_path, *targets, "--allowed-rules", *nli_rules, "--forcerun", *nli_rules, configfile=config
    )
    for system in SYSTEMS:
        scored = re.findall(
            r"(\w+): (\d+) pairs scored by the NLI model",
            (tmp_path / f"logs/score_nli/demo/{system}.log").read_text(),
        )
        assert scored == [(method, "0") for method in NLI_METHODS]
    log = (tmp_path / "logs/decompose_references/demo.log").read_text()
    assert "30 cached, 0 to decompose" in log


def test_the_nli_tokenizer_is_the_same_on_every_run():
    """tokenizers' WordPieceTrainer broke ties through a randomly seeded hash map: four runs, four vocabularies."""
    from molmix.nli.train import train_tokenizer

    sentences = [
        "The molecule is an acid.",
        "The molecule is a base.",
        "It is aromatic.",
        "It has a role as a dye.",
    ]
    first, second = train_tokenizer(sentences, 64), train_tokenizer(list(reversed(sentences)), 64)
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()
    assert first.tokenize("The molecule is an acid.") == ["the", "molecule", "is", "an", "acid", "."]
    assert first.tokenize("Acidic") == ["acid", "##i", "##c"]  # an unseen word of seen characters


def test_a_run_killed_in_the_text_stage_resumes_it_without_the_fact_stage(
    tmp_path, demo, monkeypatch, caplog
):
    """Killed after a checkpoint of the second (text-pair) stage, the re-run resumes that stage from it,
    skips the first, and writes the model the uninterrupted run writes."""
    from transformers import Trainer, TrainerCallback

    from molmix.nli.train import train_nli_model
    from molmix.training import work_dir_for

    root, config = demo
    small = config["nli"]["model"]["training"] | {"pairs_per_label": 20, "neutral_ratio": 1}
    small["arguments"] = small["arguments"] | {"num_train_epochs": 1, "save_steps": 4}
    small["text_pairs"] = {
        "pairs_per_label": 20,
        "fact_pairs_per_label": 10,
        "arguments": {"num_train_epochs": 2},
    }

    def train(out):
        return train_nli_model(
            root / "train.parquet", small, config["seed"], out / "nli", out / "metrics.json"
        )

    train(tmp_path / "uninterrupted")

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if args.output_dir == str(work_dir_for(tmp_path / "killed/nli")):
                raise KeyboardInterrupt

    original = Trainer.__init__

    def with_kill(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.add_callback(Kill())

    monkeypatch.setattr(Trainer, "__init__", with_kill)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "killed")
    monkeypatch.setattr(Trainer, "__init__", original)
    assert list(work_dir_for(tmp_path / "killed/nli").glob("checkpoint-*"))
    caplog.clear()  # only the re-run's records
    caplog.set_level("INFO")
    metrics = train(tmp_path / "killed")
    assert "resuming from" in caplog.text and "facts stage" not in caplog.text
    assert set(metrics["train_loss"]) == {"texts"}
    weights = "nli/model.safetensors"
    assert (tmp_path / "killed" / weights).read_bytes() == (tmp_path / "uninterrupted" / weights).read_bytes()
    assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == ["metrics.json", "nli"]
