"""The scoring rules in the DAG: hand-made generations of any model name are scored."""

from __future__ import annotations

import json

import pandas as pd

from conftest import run_snakemake
from molmix.artifacts import read_artifact, write_artifact

PAIRS = pd.DataFrame(
    {
        "id": ["a", "b", "c"],
        "smiles": ["CC(=O)O", "c1ccccc1O", "CCN"],
        "caption": ["The molecule is an acid.", "The molecule is a phenol.", "It is an amine."],
        "category": [None, None, None],
    }
)


def test_score_rules_score_any_model(tmp_path):
    write_artifact(PAIRS, tmp_path / "results/data/demo/test.parquet", "pairs")
    outputs = {
        "mol2cap": ["The molecule is an acid.", "", "It is an amide."],
        "cap2mol": ["CC(=O)O", "c1ccccc1", "]["],
    }
    for task, predictions in outputs.items():
        source, target = ("smiles", "caption") if task == "mol2cap" else ("caption", "smiles")
        frame = pd.DataFrame(
            {
                "id": PAIRS["id"][::-1].to_numpy(),  # row order differs from the test split
                "task": task,
                "input": PAIRS[source][::-1].to_numpy(),
                "reference": PAIRS[target][::-1].to_numpy(),
                "prediction": predictions[::-1],
                "model": "hand+made",
            }
        )
        write_artifact(frame, tmp_path / f"results/generations/demo/hand+made/{task}.parquet", "generations")
    targets = [f"results/scores/demo/hand+made/{task}.json" for task in outputs]
    run_snakemake(tmp_path, *targets, "--allowed-rules", "reference_statistics", "score_responses")
    caption = json.loads((tmp_path / targets[0]).read_text())
    molecule = json.loads((tmp_path / targets[1]).read_text())
    assert caption["n"] == 3 and caption["tokenizer"]["name"] == "bert-base-uncased"
    assert molecule["validity"] == 2 / 3 and molecule["exact"] == 1 / 3
    assert molecule["conventions"]["invalid_smiles"] == "lpm24"
    per_item = read_artifact(tmp_path / "results/scores/demo/hand+made/cap2mol.parquet", "scores")
    assert per_item["id"].tolist() == ["a", "b", "c"] and per_item["valid"].tolist() == [True, True, False]
    assert (tmp_path / "results/scores/demo/_reference/cap2mol.parquet").exists()
