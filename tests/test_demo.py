"""`make demo` from a clean copy of the checkout: the embedded default runs end to end, its models learn."""

import csv
import json
import subprocess
import sys

import pytest

from conftest import REPO
from molmix.artifacts import read_artifact
from molmix.bootstrap import smiles_validity

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_demo_ends_with_every_table_figure_and_the_report(demo_run):
    results = demo_run / "results"
    for table in ("table2", "table3", "table4", "table5", "alignment"):
        assert (results / f"tables/demo/{table}.md").stat().st_size > 0
    figures = ["ratio_ablation", "merge_vs_soup", "caption_word_counts", "training_loss"]
    for figure in [f"figures/demo/{name}.png" for name in figures] + [
        "nli/demo/figures/atomic_scores.png",
        "nli/demo/figures/kl_all.png",
    ]:
        assert (results / figure).stat().st_size > 0
    assert (results / "nli/demo/kl.csv").exists()
    assert "table2" in (results / "report.html").read_text(errors="replace")


def test_demo_models_learn(demo_run):
    """Per-task models far above the untrained base (the NLI model's checks: tests/test_nli_model.py)."""
    check = json.loads((demo_run / "results/models/demo/learning_check.json").read_text())
    assert check["untrained"]["bleu2"] < 0.05 and check["untrained"]["validity"] < 0.05
    assert check["mol2cap"]["bleu2"] >= check["untrained"]["bleu2"] + 0.3
    assert check["mol2cap"]["rougeL"] >= check["untrained"]["rougeL"] + 0.3


def test_demo_scores_every_system_on_the_whole_test_split(demo_run):
    test = read_artifact(demo_run / "results/data/demo/test.parquet", "pairs")
    scored = sorted((demo_run / "results/scores/demo").glob("*/mol2cap.json"))
    assert len(scored) >= 10
    for path in scored:
        assert json.loads(path.read_text())["n"] == len(test), path


def test_demo_cap2mol_model_writes_mostly_valid_smiles(demo_run):
    """The issue's bar: RDKit-valid SMILES for a clear majority of the test captions."""
    check = json.loads((demo_run / "results/models/demo/learning_check.json").read_text())
    assert check["cap2mol"]["validity"] >= 0.6 > check["untrained"]["validity"]


def test_demo_negatives_are_plausible_but_wrong(demo_run):
    """The T5 negatives mostly stop like real outputs, and a good share of rejected SMILES are molecules
    (0.32-0.56 over seeds 1, 2, 3, 42: config.yaml's models.negative comment)."""
    negatives = demo_run / "results/negatives/demo/train"
    pairs = {}
    for task in ("mol2cap", "cap2mol"):
        counts = json.loads((negatives / f"{task}.json").read_text())
        assert counts["truncated"] <= counts["inputs"] / 2, (task, counts)
        pairs[task] = read_artifact(negatives / f"{task}.parquet", "negatives")
        assert len(pairs[task]) == counts["pairs"] > 0
        assert (pairs[task]["rejected"] != pairs[task]["chosen"]).all()
    assert smiles_validity(pairs["cap2mol"]["rejected"].tolist()) >= 0.25


def test_paper_scale_bench_runs_the_4bit_alignment_and_generation_on_the_demo(demo_run, tmp_path):
    """`bench/gpu_paper_scale.py` at its CPU size: the real NF4 QLoRA path, then generation, measured."""
    out = tmp_path / "gpu.json"
    command = [sys.executable, str(REPO / "bench/gpu_paper_scale.py"), "--run", str(demo_run)]
    options = ["--json", str(out), "--shape", "tiny", "--method", "cpo", "--examples-per-step", "2"]
    result = subprocess.run(
        command + options + ["--batches", "2", "--max-new-tokens", "8"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    phases = json.loads(out.read_text())["phases"]
    training = phases["train_alignment_cpo"]
    assert training["quantized"] and len(training["losses"]) == 3 and training["examples"] == 6
    assert len(training["later_step_seconds"]) == 2
    assert 0 < phases["generate_batch_2"]["new_tokens"] <= 16


def test_readme_excerpt_is_what_this_run_produced(demo_run):
    """The README shows what a new user's `make demo` gives on any x86-64 machine, not one lucky run."""
    sys.path.insert(0, str(REPO / "tools"))
    from update_readme_results import END, START, excerpt

    readme = (REPO / "README.md").read_text()
    shown = readme[readme.index(START) + len(START) : readme.index(END)].strip()
    assert shown == excerpt(demo_run).strip(), "regenerate it: tools/update_readme_results.py RUN_DIR"


def test_atomic_nli_ranks_systems_as_the_caption_metrics_do(demo_run):
    """Atomic coverage orders the per-task model, a merged+aligned model and the collapsed DPO model as
    BLEU-4 does, and across all systems its rank correlation with the caption metrics is high."""
    nli = demo_run / "results/nli/demo"
    ranks = {(r["method"], r["metric"]): r["spearman"] for r in csv.DictReader((nli / "ranks.csv").open())}
    assert float(ranks[("atomic", "bleu4")]) >= 0.5 and float(ranks[("atomic", "meteor")]) >= 0.5
    systems = ("pertask", "slerp+cpo", "cap2mol+dpo")
    coverage = {s: json.loads((nli / s / "atomic.json").read_text())["coverage"] for s in systems}
    bleu4 = {
        s: json.loads((demo_run / f"results/scores/demo/{s}/mol2cap.json").read_text())["bleu4"]
        for s in systems
    }
    assert sorted(systems, key=coverage.get) == sorted(systems, key=bleu4.get)
