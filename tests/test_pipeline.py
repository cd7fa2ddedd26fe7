"""End to end on a tiny variant of the embedded default: the whole DAG runs, re-runs nothing when
nothing changed, re-runs exactly one branch when one setting changes, and survives a SIGKILL."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import REPO, run_snakemake

TINY = REPO / "tests/config/tiny.yaml"
# steps downstream of generation, which a changed model legitimately re-runs
EVALUATION_RULES = {
    "score_responses",
    "decompose_captions",
    "score_atomic_nli",
    "score_nli_baselines",
    "compare_nli_methods",
    "make_tables",
    "make_figures",
    "all",
}
pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pipeline")
    run_snakemake(workdir, "--cores", "2", configfile=TINY)
    return workdir


def jobs_to_run(workdir, configfile):
    """Rule name -> job count of a dry run with the params and input rerun triggers."""
    result = run_snakemake(
        workdir,
        "-n",
        "--rerun-triggers",
        "params",
        "input",
        "mtime",
        "--quiet",
        "rules",
        configfile=configfile,
    )
    table = result.stdout.split("Job stats:")[-1] if "Job stats:" in result.stdout else ""
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)
        if m.group(1) != "total"
    }


def edited_config(tmp_path, dotted, value):
    config = yaml.safe_load(TINY.read_text())
    node = config
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def test_the_whole_dag_produces_every_target(finished_run):
    assert (finished_run / "results/models/demo/learning_check.json").exists()
    assert (finished_run / "results/generations/demo/slerp+cpo/cap2mol.parquet").exists()
    for table in ("table2", "table3", "table4", "table5"):
        assert (finished_run / f"results/tables/demo/{table}.md").exists()
    assert (finished_run / "results/figures/demo/training_loss.png").exists()


def test_the_report_collects_tables_and_figures(finished_run):
    run_snakemake(finished_run, "--report", "report.html", configfile=TINY)
    html = (finished_run / "report.html").read_text(errors="replace")
    assert "table2.md" in html and "training_loss.png" in html


def test_nothing_changed_reruns_nothing(finished_run):
    assert jobs_to_run(finished_run, TINY) == {}


def test_one_method_setting_reruns_only_that_methods_branch(finished_run, tmp_path):
    jobs = jobs_to_run(finished_run, edited_config(tmp_path, "align.methods.dpo", {"beta": 0.3}))
    assert jobs.pop("train_alignment") == 3  # cap2mol+dpo, slerp+dpo, ties+dpo
    assert jobs.pop("generate_responses") == 6  # their two tasks each
    assert set(jobs) <= {
        "score_responses",
        "score_atomic_nli",
        "decompose_captions",
        "make_tables",
        "make_figures",
        "compare_nli_methods",
        "all",
    }


def test_one_merge_setting_reruns_only_that_merge(finished_run, tmp_path):
    jobs = jobs_to_run(finished_run, edited_config(tmp_path, "merge.merges.ties.density", 0.5))
    assert jobs.pop("merge_models") == 1
    assert jobs.pop("train_alignment") == 2  # ties+dpo, ties+cpo
    assert jobs.pop("generate_responses") == 4
    assert set(jobs) <= EVALUATION_RULES


def test_killed_training_resumes_and_completes(finished_run, tmp_path):
    """SIGKILL the pipeline during an alignment run, re-run, and get the same final artifact."""
    target = "results/aligned/demo/cap2mol/sft/history.parquet"
    config = edited_config(tmp_path, "align.training.max_steps", 6)
    copies = {}
    for name in ("killed", "uninterrupted"):
        copies[name] = tmp_path / name
        copies[name].mkdir()
        for item in ("results", "resources"):
            subprocess.run(["cp", "-a", str(finished_run / item), str(copies[name] / item)], check=True)
    run_snakemake(copies["uninterrupted"], target, configfile=config)
    workdir = copies["killed"]
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--workflow-profile",
        "none",
        "--configfile",
        str(config),
        "--cores",
        "1",
        target,
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    checkpoints = workdir / "results/aligned/demo/cap2mol/sft/.checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not any(checkpoints.glob("checkpoint-*")):
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert any(checkpoints.glob("checkpoint-*")), "the run was killed before its first checkpoint"
    assert not (workdir / target).exists() or os.path.getmtime(workdir / target) < time.time() - 5
    run_snakemake(workdir, target, "--rerun-incomplete", configfile=config)
    log = (workdir / "logs/train_alignment/demo/cap2mol/sft.log").read_text()
    assert "resuming from" in log
    assert not checkpoints.exists()
    weights = "results/aligned/demo/cap2mol/sft/model/model.safetensors"
    assert (workdir / weights).read_bytes() == (copies["uninterrupted"] / weights).read_bytes()
