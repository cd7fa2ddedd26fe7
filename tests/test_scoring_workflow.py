"""The scoring rules in the DAG: hand-made generations of any model name are scored."""

from __future__ import annotations

import json
import re

import pandas as pd

from conftest import run_snakemake
from molmix.artifacts import read_artifact, write_artifact
from standins import remote_code_model

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


def test_a_system_whose_model_needs_remote_code_is_generated_and_scored_as_not_run(
    tmp_path, tiny, write_config
):
    """At paper scale Chem-LLM (InternLM2 code in its Hub repository) is such a system unless opted in:
    its generation job succeeds with a failure record, its scores say failed, other systems go on."""
    folder = remote_code_model(tiny / "cap2mol", tmp_path / "chemllm-standin")
    config = write_config({"baselines.chemllm": {"mol2cap": str(folder), "cap2mol": str(folder)}})
    write_artifact(PAIRS, tmp_path / "run/results/data/demo/test.parquet", "pairs")
    targets = [f"results/scores/demo/chemllm/{task}.json" for task in ("mol2cap", "cap2mol")]
    rules = ("generate_responses", "reference_statistics", "score_responses")
    run_snakemake(tmp_path / "run", *targets, "--allowed-rules", *rules, configfile=config)
    log = "logs/generate_responses/demo/chemllm.log"
    for target in targets:
        summary = json.loads((tmp_path / "run" / target).read_text())
        assert "chemllm-standin: its model code is not part of transformers" in summary["failed"]
        assert summary["log"] == log and summary["n"] == 0 and "bleu" not in summary
    text = (tmp_path / "run" / log).read_text()
    assert "chemllm/mol2cap: not run, its model cannot be loaded" in text
    assert "Please pass the argument `trust_remote_code=True`" in text  # transformers' own words

    # docs/rerunning.md: the recorded failure is tried again when its loading settings change
    # (opting in changes the generation's params), or when its job is forced through one of its outputs
    dry_run = ("-n", "--rerun-triggers", "mtime", "params", "input", "--allowed-rules", *rules)
    result = run_snakemake(tmp_path / "run", *targets, *dry_run, configfile=config)
    assert "Nothing to be done" in result.stdout
    opted_in = write_config(
        {
            "baselines.chemllm": {"mol2cap": str(folder), "cap2mol": str(folder)},
            "hub.trust_remote_code": [str(folder)],
        }
    )
    result = run_snakemake(tmp_path / "run", *targets, *dry_run, configfile=opted_in)
    assert re.search(r"^generate_responses\s+1$", result.stdout, re.M)
    assert "'trust_remote_code': True" in result.stdout  # the reason: params changed
    forced = ("--forcerun", "results/generations/demo/chemllm/mol2cap.parquet")
    result = run_snakemake(tmp_path / "run", *targets, *forced, *dry_run, configfile=config)
    assert re.search(r"^generate_responses\s+1$", result.stdout, re.M)
    assert re.search(r"^score_responses\s+1$", result.stdout, re.M)
