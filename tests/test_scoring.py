"""Scoring: metric equality with the reference libraries, conventions, caching, bad input."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from molmix.artifacts import read_artifact, write_artifact
from molmix.scoring import bleu, fcd, molecules, text
from molmix.scoring.core import SUMMARY_KEYS, Scorer, ScoreSettings, score_file, score_step
from molmix.scoring.io import ScoringInputError, align_references, read_molt5_tsv
from molmix.scoring.references import cached_statistics, load_statistics, save_statistics
from molmix.scoring.tokenizer import TokenizerError, load_text_tokenizer

CAPTIONS = [
    "The molecule is a monocarboxylic acid anion that is the conjugate base of acetic acid.",
    "It is an aromatic ether and a member of phenols.",
    "The molecule is a dog-shaped alkaloid with antibacterial activity.",
]
SMILES = ["CC(=O)[O-]", "COc1ccccc1O", "CN1CCC[C@H]1c1cccnc1"]
SETTINGS = ScoreSettings.from_config(dict(text_tokenizer="bert-base-uncased", invalid_smiles="molt5"))


def items(references, predictions, model="m"):
    return pd.DataFrame(
        {
            "id": [str(i) for i in range(len(references))],
            "reference": references,
            "prediction": predictions,
            "model": model,
        }
    )


@pytest.fixture(scope="module")
def caption_scorer():
    return Scorer("mol2cap", SETTINGS)


@pytest.fixture(scope="module")
def molecule_scorer():
    return Scorer("cap2mol", SETTINGS)


@pytest.fixture(scope="module")
def caption_stats(caption_scorer):
    return caption_scorer.compute_reference_statistics([str(i) for i in range(3)], CAPTIONS)


@pytest.fixture(scope="module")
def molecule_stats(molecule_scorer):
    return molecule_scorer.compute_reference_statistics([str(i) for i in range(3)], SMILES)


# ---- equality with the libraries the official scorers call


def _nltk_bleu(references, hypotheses, weights):
    from nltk.translate.bleu_score import corpus_bleu

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = corpus_bleu([[list(r)] for r in references], [list(h) for h in hypotheses], weights=weights)
    return value if isinstance(value, list) else [value]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text("abc", max_size=8), st.text("abcd", max_size=8)), min_size=1, max_size=5))
def test_fast_bleu_equals_nltk(pairs):
    references, hypotheses = zip(*pairs, strict=True)
    weights = [(0.5, 0.5), (0.25, 0.25, 0.25, 0.25)]
    assert bleu.corpus_bleu(references, hypotheses, weights) == _nltk_bleu(references, hypotheses, weights)
    words = [r.split("a") for r in references], [h.split("a") for h in hypotheses]
    assert bleu.corpus_bleu(*words, weights) == _nltk_bleu(*words, weights)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=40), st.text(max_size=40)), min_size=1, max_size=4))
def test_rouge_equals_rouge_score(pairs):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    references, predictions = zip(*pairs, strict=True)
    ours = text.rouge_scores(text.rouge_tokens(references), text.rouge_tokens(predictions))
    for i, (ref, pred) in enumerate(pairs):
        official = scorer.score(pred, ref)  # the MolT5 script's argument order
        for key in ("rouge1", "rouge2", "rougeL"):
            assert ours[key][i] == official[key].fmeasure


def test_frechet_distance_equals_fcd_torch():
    from fcd_torch.utils import calculate_frechet_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 16)), rng.normal(0.3, 1.2, size=(250, 16))
    mu1, s1 = fcd.gaussian(a)
    mu2, s2 = fcd.gaussian(b)
    assert fcd.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
        calculate_frechet_distance(mu1, s1, mu2, s2), rel=1e-9
    )


def test_chemnet_activations_equal_fcd_torch():
    from fcd_torch import FCD

    smiles = ["CCO", "c1ccccc1Cl", "[Na+].[Cl-]", "C" * 400]  # a salt and one longer than the padding
    expected = FCD(device="cpu", n_jobs=1, canonize=False).get_predictions(smiles)
    np.testing.assert_allclose(fcd.chemnet_activations(smiles), expected, rtol=1e-5, atol=1e-6)


def test_chemnet_beside_rdkit_takes_every_thread_and_the_switch_interval_back_when_rdkit_is_done():
    import torch

    threads, interval = torch.get_num_threads(), sys.getswitchinterval()
    torch.set_num_threads(2)
    try:
        smiles = ["CCO", "c1ccccc1Cl", "CC(=O)O"]
        alone = fcd.chemnet_activations(smiles, batch_size=2)
        with fcd.CoreSharing(fcd.chemnet_activations, smiles, 2) as sharing:
            assert sharing.chemnet_threads() == 1 and sys.getswitchinterval() < interval
            shared = sharing.result()
            assert sharing.chemnet_threads() == 2 and sys.getswitchinterval() == interval
        np.testing.assert_allclose(shared, alone, rtol=1e-6, atol=1e-7)
    finally:
        torch.set_num_threads(threads)


def test_fingerprints_match_the_official_rdkit_calls():
    from rdkit import Chem, DataStructs
    from rdkit.Chem import AllChem

    mols = molecules.parse_smiles(SMILES + ["O=C(O)c1ccccc1OC(C)=O"])
    ours = molecules.fingerprints(mols)
    for i, mol in enumerate(mols):
        assert ours["rdk"][i] == Chem.RDKFingerprint(mol)
        official = AllChem.GetMorganFingerprint(mol, 2)
        assert ours["morgan"][i].GetNonzeroElements() == official.GetNonzeroElements()
        assert DataStructs.TanimotoSimilarity(ours["morgan"][i], ours["morgan"][0]) == pytest.approx(
            DataStructs.TanimotoSimilarity(official, AllChem.GetMorganFingerprint(mols[0], 2))
        )


# ---- molecules: validity and the two invalid-SMILES conventions


def test_empty_and_whitespace_outputs_are_invalid():
    from rdkit import Chem

    assert Chem.MolFromSmiles("") is not None  # RDKit's empty molecule, which must not count as valid
    valid = [m is not None for m in molecules.parse_smiles(["", " ", "\n", "C", "C1CC", "not a smiles"])]
    assert valid == [False, False, False, True, False, False]


def test_conventions_differ_only_in_invalid_outputs():
    similarity = np.array([1.0, 0.5, np.nan, np.nan])
    valid = np.array([True, True, False, False])
    assert molecules.convention_mean(similarity, valid, "molt5") == 0.75
    assert molecules.convention_mean(similarity, valid, "lpm24") == 0.375
    with pytest.raises(ValueError, match="convention"):
        molecules.convention_mean(similarity, valid, "other")


def test_cap2mol_scores(molecule_scorer, molecule_stats):
    per_item, summary = molecule_scorer.score(
        items(SMILES, ["CC(=O)[O-]", "COc1ccccc1", "definitely not"]), molecule_stats
    )
    assert per_item["valid"].tolist() == [True, True, False]
    assert per_item["exact"].tolist() == [True, False, False]
    assert per_item["maccs_fts"][0] == 1.0 and 0 < per_item["maccs_fts"][1] < 1
    assert math.isnan(per_item["maccs_fts"][2])
    assert summary["validity"] == pytest.approx(2 / 3)
    assert summary["maccs_fts_molt5"] == pytest.approx(per_item["maccs_fts"][:2].mean())
    assert summary["maccs_fts_lpm24"] == pytest.approx(per_item["maccs_fts"][:2].sum() / 3)
    assert summary["maccs_fts"] == summary["maccs_fts_molt5"]
    assert summary["fcd"] is not None and summary["fcd"] >= 0
    assert set(SUMMARY_KEYS["cap2mol"]) <= set(summary) and summary["n"] == 3


def test_fcd_is_none_with_fewer_than_two_valid_predictions(molecule_scorer, molecule_stats):
    _, summary = molecule_scorer.score(items(SMILES, ["CCO", "", "]["]), molecule_stats)
    assert summary["fcd"] is None and summary["validity"] == pytest.approx(1 / 3)


def test_identical_predictions_score_perfectly(
    molecule_scorer, molecule_stats, caption_scorer, caption_stats
):
    _, mol = molecule_scorer.score(items(SMILES, SMILES), molecule_stats)
    assert mol["exact"] == mol["validity"] == mol["bleu"] == mol["maccs_fts"] == 1.0
    assert mol["levenshtein"] == 0.0 and abs(mol["fcd"]) < 1e-3
    _, cap = caption_scorer.score(items(CAPTIONS, CAPTIONS), caption_stats)
    assert cap["bleu4"] == pytest.approx(1.0) and cap["rougeL"] == pytest.approx(1.0)


# ---- captions: tokenizer traps, WordNet


def test_tokenizer_truncates_explicitly_and_drops_literal_special_tokens():
    tokenizer = load_text_tokenizer("bert-base-uncased", max_tokens=512)
    assert tokenizer.vocab_size == 30522
    assert tokenizer.source.endswith("molmix/scoring/data/bert-base-uncased")  # shipped, no model weights
    long, special = tokenizer.tokenize(["carbon " * 700, "an [CLS] acid [SEP] [PAD]"])
    assert len(long) == 512
    assert special == ["an", "acid"]


def test_a_five_token_vocabulary_is_refused(tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordPiece

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])}
    Tokenizer(WordPiece(vocab, unk_token="[UNK]")).save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(TokenizerError, match="only 5 tokens"):
        load_text_tokenizer(str(tmp_path))


def test_known_tokenizer_with_wrong_size_is_refused(tmp_path, monkeypatch):
    from molmix.scoring import tokenizer as module

    monkeypatch.setitem(module.KNOWN_VOCAB_SIZES, "bert-base-uncased", 31090)
    with pytest.raises(TokenizerError, match="expected 31090"):
        load_text_tokenizer("bert-base-uncased")


def test_fallback_tokenizer_is_named_and_flagged_not_comparable(caption_stats):
    scorer = Scorer(
        "mol2cap",
        ScoreSettings.from_config(
            dict(text_tokenizer="/nonexistent/scibert", fallback_tokenizer="bert-base-uncased")
        ),
    )
    assert scorer.tokenizer.name == "bert-base-uncased" and "nonexistent" in scorer.fallback_reason
    _, summary = scorer.score(
        items(CAPTIONS, CAPTIONS[::-1]), scorer.compute_reference_statistics(["0", "1", "2"], CAPTIONS)
    )
    assert summary["comparable_to_published"] is False
    assert summary["tokenizer"]["name"] == "bert-base-uncased"
    assert any("not comparable" in note for note in summary["notes"])


# ---- offline: the Hub is not tried when it cannot answer (its client retried for about 50 s)


@pytest.fixture
def unreachable_hub(monkeypatch):
    """The Hub's endpoint is a local port nothing listens on (connections are refused), offline mode off."""
    import socket

    from huggingface_hub import constants

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")


def test_offline_mode_is_detected_without_a_request(monkeypatch):
    from huggingface_hub import constants

    from molmix.scoring import tokenizer as module

    def no_request(*args, **kwargs):
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets
    monkeypatch.setattr(module.urllib.request, "urlopen", no_request)
    assert "HF_HUB_OFFLINE" in module.hub_unavailable()


def test_an_unreachable_hub_is_detected_and_any_answer_counts_as_reachable(unreachable_hub, monkeypatch):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from huggingface_hub import constants

    from molmix.scoring.tokenizer import hub_unavailable

    assert "is unreachable" in hub_unavailable(timeout=1)

    class Quiet(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

    with HTTPServer(("127.0.0.1", 0), Quiet) as server:  # answers HEAD with 501: reachable all the same
        threading.Thread(target=server.handle_request, daemon=True).start()
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert hub_unavailable(timeout=5) is None


def test_offline_a_hub_tokenizer_is_only_looked_for_in_the_local_cache(monkeypatch):
    import transformers

    from molmix.scoring import tokenizer as module

    calls = []

    def from_pretrained(name, **kwargs):
        calls.append((name, kwargs))
        raise OSError("not in the cache")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", staticmethod(from_pretrained))
    monkeypatch.setattr(module, "hub_unavailable", lambda: "offline mode (HF_HUB_OFFLINE is set)")
    tokenizer, reason = module.resolve_text_tokenizer(module.SCIBERT, "bert-base-uncased")
    assert calls == [(module.SCIBERT, {"local_files_only": True})]
    assert tokenizer.name == "bert-base-uncased"
    assert "offline mode" in reason and "local Hugging Face cache" in reason


def test_score_goes_straight_to_the_fallback_when_the_hub_is_unreachable(tmp_path, unreachable_hub, capsys):
    import time

    from molmix.cli import main

    tsv = tmp_path / "p.txt"
    tsv.write_text("SMILES\tground truth\toutput\nC\ta dog\ta puppy\n")
    start = time.monotonic()
    main(["score", str(tsv), "--text-tokenizer", "molmix-tests/not-a-tokenizer", "--no-cache", "--no-fcd"])
    elapsed = time.monotonic() - start
    printed = json.loads(capsys.readouterr().out)
    assert printed["tokenizer"]["name"] == "bert-base-uncased" and printed["comparable_to_published"] is False
    assert "is unreachable" in printed["tokenizer_fallback"]
    assert elapsed < 30, f"{elapsed:.0f} s: the Hub was tried"


def test_meteor_uses_wordnet_synonyms():
    tokens = [["a", "dog"]]
    hound, cat = (
        text.meteor_scores(tokens, [["a", "hound"]])[0],
        text.meteor_scores(tokens, [["a", "cat"]])[0],
    )
    assert hound > cat  # 'hound' shares a WordNet synset with 'dog' (nltk stems before the synonym stage)


WORDNET_HIDDEN = """
import sys, nltk
nltk.data.path[:] = [sys.argv[1]]
from molmix.scoring.core import Scorer, ScoreSettings
from molmix.scoring.text import WordNetMissing
try:
    Scorer("mol2cap", ScoreSettings.from_config(dict(text_tokenizer="bert-base-uncased"))).meteor.scores([["a", "dog"]], [["a", "dog"]]).result()
except WordNetMissing as err:
    print("MISSING:", err)
"""


def test_scoring_fails_clearly_without_wordnet(tmp_path):
    # identical captions would never reach WordNet: the METEOR process loads it before any caption
    result = subprocess.run(
        [sys.executable, "-c", WORDNET_HIDDEN, str(tmp_path)], capture_output=True, text=True
    )
    assert "MISSING: METEOR needs WordNet" in result.stdout, result.stderr
    assert "tools/install_wordnet.sh" in result.stdout
    tsv = tmp_path / "p.txt"
    tsv.write_text("SMILES\tground truth\toutput\nC\ta dog\ta puppy\n")
    code = "import sys, nltk; nltk.data.path[:] = [sys.argv[1]]; from molmix.cli import main; sys.exit(main(sys.argv[2:]))"
    args = [str(tmp_path), "score", str(tsv), "--text-tokenizer", "bert-base-uncased", "--no-cache"]
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert result.returncode == 2 and "METEOR needs WordNet" in result.stderr


def test_scoring_fails_clearly_with_an_incomplete_wordnet(tmp_path):
    import nltk

    installed = Path(nltk.data.find("corpora/wordnet"))
    copy = tmp_path / "corpora/wordnet"
    shutil.copytree(installed, copy)
    (copy / "lexnames").unlink()  # Debian's packages lack it (tools/install_wordnet.sh writes it)
    result = subprocess.run(
        [sys.executable, "-c", WORDNET_HIDDEN, str(tmp_path)], capture_output=True, text=True
    )
    assert "MISSING: METEOR needs WordNet 3.0" in result.stdout and "incomplete" in result.stdout, (
        result.stderr
    )


def test_english_wordnet_gives_nltks_synonyms():
    from nltk.corpus import wordnet

    for word in ("dog", "acid", "bind", "compound", "agent"):
        expected = [[lemma.name() for lemma in synset.lemmas()] for synset in wordnet.synsets(word)]
        found = [
            [lemma.name() for lemma in synset.lemmas()] for synset in text.require_wordnet().synsets(word)
        ]
        assert found == expected


# ---- any prediction scores


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=300), min_size=3, max_size=3))
def test_any_unicode_prediction_scores(
    caption_scorer, caption_stats, molecule_scorer, molecule_stats, predictions
):
    _, cap = caption_scorer.score(items(CAPTIONS, predictions), caption_stats)
    for key in SUMMARY_KEYS["mol2cap"]:
        assert 0.0 <= cap[key] <= 1.0 + 1e-12
    per_item, mol = molecule_scorer.score(items(SMILES, predictions), molecule_stats)
    assert 0.0 <= mol["validity"] <= 1.0 and mol["levenshtein"] >= 0 and 0.0 <= mol["bleu"] <= 1.0
    assert per_item["valid"].sum() == mol["n_valid"]


def test_hostile_outputs_score(caption_scorer, caption_stats, molecule_scorer, molecule_stats):
    hostile = ["", "   \t", "Молекула ☢ 分子 \U0001f9ea"]
    long = ["C" * 5_000, "x" * 10_000, "[CLS] " + "acid " * 3000]
    for predictions in (hostile, long):
        _, cap = caption_scorer.score(items(CAPTIONS, predictions), caption_stats)
        assert cap["meteor"] >= 0
        per_item, mol = molecule_scorer.score(items(SMILES, predictions), molecule_stats)
        assert mol["n"] == 3
    assert per_item["valid"].tolist() == [True, False, False]  # 5,000 carbons (the bound) is a valid alkane


# ---- files: readers, caching, bad input


def write_generations(path, task, references, predictions, model="sys"):
    frame = pd.DataFrame(
        {
            "id": [f"id{i}" for i in range(len(references))],
            "task": task,
            "input": "x",
            "reference": references,
            "prediction": predictions,
            "model": model,
        }
    )
    write_artifact(frame, path, "generations")
    return path


def write_test(path, n=3):
    frame = pd.DataFrame(
        {"id": [f"id{i}" for i in range(n)], "smiles": SMILES[:n], "caption": CAPTIONS[:n], "category": None}
    )
    write_artifact(frame, path, "pairs")
    return path


def test_parquet_none_and_nan_predictions_score_as_empty(tmp_path):
    path = write_generations(tmp_path / "g.parquet", "cap2mol", SMILES, [None, "COc1ccccc1O", float("nan")])
    per_item, summary = score_file(path, None, SETTINGS, cache_dir=None)
    assert per_item["prediction"].tolist() == ["", "COc1ccccc1O", ""]
    assert summary["validity"] == pytest.approx(1 / 3)


def test_mismatched_row_counts_name_both_files(tmp_path):
    generations = write_generations(tmp_path / "g.parquet", "mol2cap", CAPTIONS[:2], ["a", "b"])
    test = write_test(tmp_path / "test.parquet")
    with pytest.raises(ScoringInputError) as err:
        score_step(
            str(generations),
            str(test),
            "unused",
            "mol2cap",
            {},
            str(tmp_path / "s.parquet"),
            str(tmp_path / "s.json"),
        )
    assert "g.parquet" in str(err.value) and "test.parquet" in str(err.value)
    assert not (tmp_path / "s.json").exists()


def test_tsv_against_a_references_file_of_another_length(tmp_path):
    predictions = tmp_path / "pred.txt"
    predictions.write_text("description\tground truth\toutput\nd\tCCO\tCCO\n")
    references = tmp_path / "refs.txt"
    references.write_text("description\tground truth\toutput\nd\tCCO\tx\nd\tCC\tx\n")
    with pytest.raises(ScoringInputError, match="pred.txt.*refs.txt"):
        score_file(predictions, None, SETTINGS, references_path=references)


def test_malformed_tsv_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("SMILES\tground truth\toutput\nC\tan acid\tan acid\nC\tonly two\n")
    with pytest.raises(ScoringInputError, match=r"bad.txt, line 3"):
        read_molt5_tsv(bad)
    bad.write_text("smiles\tcaption\n")
    with pytest.raises(ScoringInputError, match="not a MolT5-format TSV"):
        read_molt5_tsv(bad)
    bad.write_bytes(b"SMILES\tground truth\toutput\nC\t\xff\tx\n")
    with pytest.raises(ScoringInputError, match="not UTF-8"):
        read_molt5_tsv(bad)


def test_references_must_agree_by_id(tmp_path):
    generations = items(CAPTIONS, CAPTIONS).assign(id=["id0", "id1", "id2"])
    references = generations[["id", "reference"]].assign(reference=["x", "y", "z"])
    with pytest.raises(ScoringInputError, match="differs between"):
        align_references(generations, tmp_path / "g.parquet", references, tmp_path / "t.parquet")
    shuffled = generations.iloc[::-1].reset_index(drop=True)
    aligned = align_references(
        shuffled, tmp_path / "g.parquet", generations[["id", "reference"]], tmp_path / "t.parquet"
    )
    assert aligned["id"].tolist() == ["id0", "id1", "id2"]


def test_reference_statistics_are_cached_and_reused(tmp_path, monkeypatch, molecule_scorer):
    from molmix.scoring import references

    key = molecule_scorer.key(["0", "1", "2"], SMILES)
    args = {"tokenizer": None, "morgan_radius": 2, "fcd": True}
    first = cached_statistics(tmp_path, "cap2mol", ["0", "1", "2"], SMILES, key, **args)
    assert (tmp_path / f"cap2mol-{key}.parquet").exists()
    monkeypatch.setattr(references, "compute_statistics", lambda *a, **k: pytest.fail("recomputed"))
    second = cached_statistics(tmp_path, "cap2mol", ["0", "1", "2"], SMILES, key, **args)
    np.testing.assert_array_equal(first.activations, second.activations)
    assert [fp.ToBitString() for fp in second.fingerprints["maccs"]] == [
        fp.ToBitString() for fp in first.fingerprints["maccs"]
    ]
    assert molecule_scorer.key(["0", "1", "2"], SMILES[::-1]) != key
    assert (
        Scorer("cap2mol", ScoreSettings.from_config(dict(morgan_radius=3))).key(["0", "1", "2"], SMILES)
        != key
    )


def test_score_step_writes_scores_and_summary(tmp_path):
    test = write_test(tmp_path / "test.parquet")
    generations = write_generations(tmp_path / "g.parquet", "mol2cap", CAPTIONS, ["an acid", "", CAPTIONS[2]])
    cfg = {"text_tokenizer": "bert-base-uncased", "invalid_smiles": "lpm24"}
    from molmix.scoring.core import reference_statistics_step

    reference_statistics_step(str(test), "mol2cap", cfg, str(tmp_path / "ref.parquet"))
    out = tmp_path / "scores"
    score_step(
        str(generations),
        str(test),
        str(tmp_path / "ref.parquet"),
        "mol2cap",
        cfg,
        str(out / "s.parquet"),
        str(out / "s.json"),
    )
    per_item = read_artifact(out / "s.parquet", "scores")
    summary = json.loads((out / "s.json").read_text())
    assert per_item["meteor"].mean() == pytest.approx(summary["meteor"])
    assert summary["model"] == "sys" and summary["tokenizer"]["vocab_size"] == 30522
    # statistics of other settings are refused rather than silently used
    other = {"text_tokenizer": "bert-base-uncased", "max_text_tokens": 8}
    with pytest.raises(ScoringInputError, match="reference statistics do not belong"):
        score_step(
            str(generations),
            str(test),
            str(tmp_path / "ref.parquet"),
            "mol2cap",
            other,
            str(out / "t.parquet"),
            str(out / "t.json"),
        )
    assert load_statistics(tmp_path / "ref.parquet").n == 3
    save_statistics(load_statistics(tmp_path / "ref.parquet"), tmp_path / "copy.parquet")


def test_cli_scores_a_molt5_tsv(tmp_path):
    tsv = tmp_path / "c2s.txt"
    tsv.write_text("description\tground truth\toutput\n" + "".join(f"d\t{s}\t{s}\n" for s in SMILES))
    out = tmp_path / "summary.json"
    items = tmp_path / "items.parquet"
    args = ["score", str(tsv), "--task", "cap2mol", "--json", str(out), "--per-item", str(items)]
    args += ["--cache-dir", str(tmp_path / "cache"), "--threads", "1"]
    result = subprocess.run([sys.executable, "-m", "molmix.cli", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == json.loads(out.read_text())
    assert pd.read_parquet(items)["exact"].tolist() == [True] * 3
    assert printed["task"] == "cap2mol" and printed["n"] == 3 and printed["exact"] == 1.0
    assert (
        set(SUMMARY_KEYS["cap2mol"]) <= set(printed)
        and printed["conventions"]["invalid_smiles"] == "lpm24"  # the schema's score.invalid_smiles
    )
    bad = subprocess.run(
        [sys.executable, "-m", "molmix.cli", "score", str(tmp_path / "missing.txt")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "missing.txt" in bad.stderr


def test_cap2mol_without_fcd_does_not_load_torch(tmp_path):
    """--no-fcd skips ChemNet, and with it torch's import (≈1.7 s per process)."""
    tsv = tmp_path / "cap2mol.txt"
    tsv.write_text("description\tground truth\toutput\nd\tCCO\tOCC\nd\tc1ccccc1\tC1CC1\n")
    code = (
        "import sys; from molmix.cli import main; "
        f"main(['score', {str(tsv)!r}, '--task', 'cap2mol', '--no-fcd', '--no-cache']); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["exact"] == 0.5


@pytest.mark.parametrize("damage", ["reversed", "one_row_missing"])
def test_a_damaged_statistics_file_is_never_trusted_by_its_key(tmp_path, damage):
    """Reversed rows once gave BLEU-2 0.578 -> 0.167 with exit 0; a missing row an internal zip() error."""
    from molmix.artifacts import read_metadata, write_artifact
    from molmix.scoring.core import reference_statistics_step

    test = write_test(tmp_path / "test.parquet")
    generations = write_generations(tmp_path / "g.parquet", "mol2cap", CAPTIONS, CAPTIONS)
    cfg = {"text_tokenizer": "bert-base-uncased", "invalid_smiles": "lpm24"}
    statistics = tmp_path / "ref.parquet"
    reference_statistics_step(str(test), "mol2cap", cfg, str(statistics))
    frame = read_artifact(statistics, "reference_statistics")
    damaged = frame.iloc[::-1] if damage == "reversed" else frame.iloc[:-1]
    metadata = read_metadata(statistics)
    extra = {name: metadata[name] for name in ("task", "key", "format")}
    write_artifact(damaged.reset_index(drop=True), statistics, "reference_statistics", extra_metadata=extra)
    out = tmp_path / "scores"
    with pytest.raises(
        ScoringInputError, match=r"ref.parquet: reference statistics do not match .*(row 0|rows)"
    ):
        score_step(
            str(generations),
            str(test),
            str(statistics),
            "mol2cap",
            cfg,
            str(out / "s.parquet"),
            str(out / "s.json"),
        )
    # the CLI's cache folder: the damaged entry is recomputed, and the scores are those of the references
    scorer = Scorer("mol2cap", ScoreSettings.from_config(dict(text_tokenizer="bert-base-uncased")))
    ids = [str(i) for i in range(3)]
    key = scorer.key(ids, CAPTIONS)
    write_artifact(
        damaged.reset_index(drop=True),
        tmp_path / f"mol2cap-{key}.parquet",
        "reference_statistics",
        extra_metadata=extra | {"key": key},
    )
    stats = scorer.reference_statistics(ids, CAPTIONS, cache_dir=tmp_path)
    assert stats.ids == ids and stats.references == CAPTIONS
    assert read_artifact(tmp_path / f"mol2cap-{key}.parquet", "reference_statistics")["id"].tolist() == ids


def test_overlong_smiles_are_invalid_and_nul_bytes_and_overlong_captions_refused(tmp_path):
    """A 20,000-character prediction once segfaulted RDKit (exit 139); a NUL byte was scored silently."""
    from molmix.scoring.molecules import MAX_SMILES_CHARACTERS

    long = tmp_path / "long.tsv"
    long.write_text("description\tground truth\toutput\nx\tCCO\t" + "C" * 20000 + "\ny\tCCO\tCCO\n")
    result = subprocess.run(
        [sys.executable, "-m", "molmix.cli", "score", str(long), "--no-cache", "--no-fcd"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["validity"] == 0.5 and summary["n_overlong"] == 1 and MAX_SMILES_CHARACTERS < 20000
    nul = tmp_path / "nul.tsv"
    nul.write_text("description\tground truth\toutput\nx\tCCO\tCCO\ny\tCCO\tCC\x00O\n")
    result = subprocess.run(
        [sys.executable, "-m", "molmix.cli", "score", str(nul), "--no-cache", "--no-fcd"],
        capture_output=True,
        text=True,
    )
    assert (
        result.returncode != 0 and f"{nul}: row 1 (id '1') has a NUL byte in its prediction" in result.stderr
    )
    captions = tmp_path / "captions.tsv"
    captions.write_text("SMILES\tground truth\toutput\nCCO\tAn acid.\t" + "acid " * 5000 + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "molmix.cli", "score", str(captions), "--no-cache"],
        capture_output=True,
        text=True,
    )
    assert (
        result.returncode != 0
        and "row 0 (id '0'): its prediction is longer than 20,000 characters" in result.stderr
    )


def test_unreadable_inputs_are_clear_errors(tmp_path):
    """A folder as FILE and a truncated Parquet as --references once ended in raw tracebacks."""
    test = write_test(tmp_path / "test.parquet")
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(test.read_bytes()[:300])
    tsv = tmp_path / "p.tsv"
    tsv.write_text("description\tground truth\toutput\nx\tCCO\tCCO\n")
    for args, message in [
        ([str(tmp_path)], f"{tmp_path}: cannot be read as a MolT5-format TSV"),
        ([str(tsv), "--references", str(truncated)], f"{truncated}: not a readable Parquet file"),
        ([str(truncated)], f"{truncated}: not a readable Parquet file"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "molmix.cli", "score", *args, "--no-cache", "--no-fcd"],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, (
            result.stderr
        )
