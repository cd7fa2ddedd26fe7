"""Conformance with the official MolT5 scorers on MolT5-Large's published ChEBI-20 test predictions.

Expected values: what MolT5's evaluation scripts print on these files (fixtures README), with the
bert-base-uncased WordPiece tokenizer standing in for SciBERT exactly as there, WordNet 3.0 and
fcd-torch. Each must be reproduced to 4 decimal places.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fixtures import fixture_path
from molmix.scoring.core import ScoreSettings, score_file

OFFICIAL = {
    "molt5-large-smiles2caption.txt": {
        "bleu2": 0.5875140241442712,
        "bleu4": 0.5111898013556243,
        "rouge1": 0.6528912825000909,
        "rouge2": 0.5084292862770899,
        "rougeL": 0.5928798267208989,
        "meteor": 0.6192714100874736,
    },
    "molt5-large-caption2smiles.txt": {
        "bleu": 0.8579212285682275,
        "exact": 0.3181818181818182,
        "levenshtein": 15.957272727272727,
        "validity": 0.9584848484848485,
        "maccs_fts": 0.8893729707363264,
        "rdk_fts": 0.8071276645197487,
        "morgan_fts": 0.7495574399590816,
        "fcd": 0.38205989041230737,
    },
}

pytestmark = pytest.mark.slow


def stand_in_tokenizer() -> str:
    return str(fixture_path("tokenizers/bert-base-uncased"))


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_reproduces_the_official_numbers_to_4_decimals(name, tmp_path):
    settings = ScoreSettings.from_config(dict(text_tokenizer=stand_in_tokenizer(), invalid_smiles="molt5"))
    _, summary = score_file(fixture_path(f"molt5/{name}"), None, settings, cache_dir=tmp_path)
    for metric, expected in OFFICIAL[name].items():
        assert round(summary[metric], 4) == round(expected, 4), (metric, summary[metric], expected)
    assert summary["n"] == 3300


def test_cli_reproduces_the_caption_numbers(tmp_path):
    path = fixture_path("molt5/molt5-large-smiles2caption.txt")
    args = ["score", str(path), "--task", "mol2cap", "--text-tokenizer", stand_in_tokenizer(), "--no-cache"]
    result = subprocess.run([sys.executable, "-m", "molmix.cli", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    for metric, expected in OFFICIAL["molt5-large-smiles2caption.txt"].items():
        assert round(printed[metric], 4) == round(expected, 4)
    assert printed["tokenizer"]["vocab_size"] == 30522 and printed["tokenizer_fallback"] is None
