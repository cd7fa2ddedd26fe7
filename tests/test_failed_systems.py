"""A system whose model cannot be loaded (at paper scale Chem-LLM, unless its remote code is allowed) is
recorded as not run: scoring, NLI and figures carry it as such instead of failing (tables:
tests/test_tables.py; the generation step: tests/test_generate.py)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import PAIRS
from molmix.artifacts import read_artifact, read_metadata, write_artifact
from molmix.generate import generate_step
from molmix.names import NLI_METHODS

LOG = "logs/generate_responses/demo/chemllm.log"
DECODING = {"batch_size": 4, "max_new_tokens": 6, "num_beams": 1}


@pytest.fixture
def not_run(tmp_path):
    """Generations of system 'chemllm' whose model folder cannot be loaded, and the test split."""
    test = tmp_path / "data/test.parquet"
    write_artifact(PAIRS, test, "pairs")
    outputs = {task: str(tmp_path / f"generations/chemllm/{task}.parquet") for task in ("mol2cap", "cap2mol")}
    models = dict.fromkeys(outputs, str(tmp_path / "no-such-model"))
    generate_step(models, str(test), "chemllm", DECODING, 0, outputs, log_path=LOG)
    return outputs, test


def test_scoring_a_system_that_was_not_run_writes_a_failed_summary(not_run, tmp_path):
    from molmix.scoring.core import SUMMARY_KEYS, score_step

    outputs, test = not_run
    for task, generations in outputs.items():
        scores, summary_path = tmp_path / f"{task}.parquet", tmp_path / f"{task}.json"
        score_step(generations, str(test), "unused", task, {}, str(scores), str(summary_path))
        summary = json.loads(summary_path.read_text())
        assert "no-such-model: not a model folder" in summary["failed"] and summary["log"] == LOG
        assert (summary["n"], summary["task"], summary["model"]) == (0, task, "chemllm")
        assert not set(SUMMARY_KEYS[task]) & set(summary)  # no metric values at all
        assert len(read_artifact(scores, "scores")) == 0
        assert read_metadata(scores)["summary"] == summary


def nli_scores(system: str, coverage: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": PAIRS["id"],
            "task": "mol2cap",
            "model": system,
            "method": "atomic",
            "reference": PAIRS["caption"],
            "prediction": PAIRS["caption"],
            "hallucination": [1 - c for c in coverage],
            "unsupported": [1 - c for c in coverage],
            "coverage": coverage,
            "no_prediction_units": False,
            "no_reference_units": False,
        }
    )


def test_nli_treats_a_system_that_was_not_run_as_one_without_captions(not_run, tmp_path):
    from molmix.nli.steps import SystemNotRun, compare_step, decompose_step, score_step

    generations = not_run[0]["mol2cap"]
    atoms = tmp_path / "nli/chemllm/atoms.parquet"
    decompose_step(generations, "prediction", {"backend": "rules"}, None, None, atoms)
    assert len(read_artifact(atoms, "atoms")) == 0 and read_metadata(atoms)["log"] == LOG
    outputs = {
        m: (tmp_path / f"nli/chemllm/{m}.parquet", tmp_path / f"nli/chemllm/{m}.json") for m in NLI_METHODS
    }
    # no NLI model is loaded for a system without captions: the model path is never read
    score_step(generations, "unused", atoms, "no-nli-model", {}, None, outputs)
    for method, (scores, summary_path) in outputs.items():
        summary = json.loads(summary_path.read_text())
        assert summary["method"] == method and summary["system"] == "chemllm" and summary["n"] == 0
        assert "not a model folder" in summary["failed"] and summary["log"] == LOG
        assert len(read_artifact(scores, "nli_scores")) == 0

    files = {}
    for system, coverage in (("good", [0.9, 0.8, 0.7]), ("bad", [0.1, 0.3, 0.2])):
        for method in NLI_METHODS:
            files[f"{method}__{system}"] = tmp_path / f"nli/{system}/{method}.parquet"
            write_artifact(
                nli_scores(system, coverage).assign(method=method), files[f"{method}__{system}"], "nli_scores"
            )
    files |= {f"{method}__chemllm": outputs[method][0] for method in NLI_METHODS}
    compare = {
        "preferred": "good",
        "dispreferred": "bad",
        "systems": ["good", "bad", "chemllm"],
        "bins": 10,
        "smoothing": 1.0,
        "long_caption_words": [5],
    }
    out = {
        name: tmp_path / f"compare/{name}"
        for name in ("kl.csv", "kl.json", "summary.md", "summary.html", "figures")
    }
    kl = compare_step(files, not_run[1], compare, *out.values())
    assert set(kl["method"]) == set(NLI_METHODS) and kl["kl"].notna().all()
    details = json.loads(out["kl.json"].read_text())
    assert "not a model folder" in details["not_run"]["chemllm"]["failed"]
    assert {row["system"] for row in details["systems"]} == {"good", "bad"}
    summary = out["summary.md"].read_text()
    assert "## Systems not run (left out)\n\n- chemllm: not run — " in summary and f"; see {LOG}" in summary
    page = out["summary.html"].read_text()
    assert "<caption>" in page and page.count("<table") == 2 and "chemllm" not in page
    assert (out["figures"] / "atomic_scores.png").exists()

    with pytest.raises(
        SystemNotRun, match=r"nli.compare.dispreferred: system 'chemllm' was not run \(.*not a model folder"
    ):
        compare_step(files, not_run[1], {**compare, "dispreferred": "chemllm"}, *out.values())


def test_figures_leave_out_a_system_that_was_not_run(not_run, tmp_path, caplog):
    from molmix.figures import figures_step

    level = {"mol2cap": dict.fromkeys(("bleu2", "bleu4", "rouge1", "rouge2", "rougeL", "meteor"), 0.5)}
    level["cap2mol"] = {"bleu": 0.5, "levenshtein": 9.0, "maccs_fts": 0.5, "rdk_fts": 0.5, "morgan_fts": 0.5}
    level["cap2mol"] |= {"fcd": 2.0, "validity": 0.5}
    inputs = {"test": str(not_run[1])}
    for system in ("slerp", "soup", "chemllm"):
        for task in ("mol2cap", "cap2mol"):
            path = tmp_path / f"scores/{system}/{task}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            failed = {"failed": "cannot be loaded", "log": LOG, "n": 0}
            path.write_text(json.dumps(failed if system == "chemllm" else level[task]))
            inputs[f"score__{system}__{task}"] = str(path)
    cfg = {
        "long_caption_words": [5],
        "merge_comparison": {"SLERP": "slerp", "soup": "soup", "Chem": "chemllm"},
    }
    figures_step(cfg, inputs, {}, tmp_path / "figures")
    assert (tmp_path / "figures/merge_vs_soup.png").exists()
    assert (
        "figures: chemllm left out, it was not run (cap2mol: cannot be loaded; mol2cap: cannot be loaded)"
        in caplog.text
    )
