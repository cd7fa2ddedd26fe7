"""End to end on a tiny variant of the embedded default: the whole DAG runs, re-runs nothing when
nothing changed, re-runs exactly one branch when one setting changes, and survives a SIGKILL."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from conftest import REPO, run_snakemake
from fixtures import fixture_path
from molmix.artifacts import read_artifact, read_metadata
from molmix.names import NLI_METHODS
from molmix.nli.steps import PAIR_STORE
from molmix.training import work_dir_for

TINY = REPO / "tests/config/tiny.yaml"
# steps downstream of generation, which a changed model legitimately re-runs
EVALUATION_RULES = {
    "score_responses",
    "decompose_captions",
    "score_nli",
    "compare_nli_methods",
    "rank_nli_methods",
    "make_tables",
    "summarize_alignment",
    "make_figures",
    "all",
}
pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pipeline")
    run_snakemake(workdir, "--cores", "2", configfile=TINY, profile=str(REPO / "profiles/cpu"))
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
    for split in ("train", "validation"):  # the validation pairs are alignment's evaluation data
        for task in ("mol2cap", "cap2mol"):
            pairs = finished_run / f"results/negatives/demo/{split}/{task}.parquet"
            assert len(read_artifact(pairs, "negatives")) > 0
    assert (finished_run / "results/generations/demo/slerp+cpo/cap2mol.parquet").exists()
    for table in ("table2", "table3", "table4", "table5"):
        assert (finished_run / f"results/tables/demo/{table}.md").exists()
    assert (finished_run / "results/figures/demo/training_loss.png").exists()


def test_every_alignment_run_keeps_its_best_evaluated_step(finished_run):
    """Fig. 14's load_best_model_at_end: eval_loss on the validation pairs at every eval_steps (tiny.yaml:
    every step), and the step with the lowest one is the step kept, as the history's metadata says."""
    histories = sorted((finished_run / "results/aligned/demo").glob("*/*/history.parquet"))
    assert len(histories) == 10
    for path in histories:
        history, meta = read_artifact(path, "training_log"), read_metadata(path)
        evaluated = history.dropna(subset=["eval_loss"])
        assert evaluated["step"].tolist() == [1, 2, 3], path
        best = int(evaluated.loc[evaluated["eval_loss"].idxmin(), "step"])
        assert (meta["kept_step"], meta["kept_by"], meta["last_step"]) == (best, "best eval_loss", 3), path


def test_the_report_collects_tables_and_figures(finished_run):
    run_snakemake(finished_run, "--report", "report.html", configfile=TINY)
    html = (finished_run / "report.html").read_text(errors="replace")
    assert "table2.md" in html and "training_loss.png" in html


def test_nothing_changed_reruns_nothing(finished_run):
    assert jobs_to_run(finished_run, TINY) == {}
    forced = run_snakemake(finished_run, "-n", "-R", "train_alignment", "--quiet", "rules", configfile=TINY)
    assert re.search(r"^train_alignment\s+10$", forced.stdout, re.M)  # docs/rerunning.md: -R


def test_one_method_setting_reruns_only_that_methods_branch(finished_run, tmp_path):
    config = edited_config(tmp_path, "align.methods.dpo", {"beta": 0.3})
    jobs = jobs_to_run(finished_run, config)
    assert jobs.pop("train_alignment") == 3  # cap2mol+dpo, slerp+dpo, ties+dpo
    assert jobs.pop("generate_responses") == 3  # both tasks of each in one job
    assert set(jobs) <= EVALUATION_RULES
    # docs/rerunning.md: --list-changes params names every output of the changed runs (Snakemake 9.27
    # also prints the last output of each unchanged job: the page says so)
    listed = run_snakemake(finished_run, "-n", "--list-changes", "params", configfile=config).stdout
    for output in ("adapter", "model", "history.parquet", "loss.png"):
        assert f"results/aligned/demo/ties/dpo/{output}" in listed.splitlines()
    assert "results/aligned/demo/ties/cpo/model" not in listed.splitlines()


def test_one_merge_setting_reruns_only_that_merge(finished_run, tmp_path):
    jobs = jobs_to_run(finished_run, edited_config(tmp_path, "merge.merges.ties.density", 0.5))
    assert jobs.pop("merge_models") == 1
    assert jobs.pop("train_alignment") == 2  # ties+dpo, ties+cpo
    assert jobs.pop("generate_responses") == 2
    assert set(jobs) <= EVALUATION_RULES


def test_deleted_nli_intermediates_are_rebuilt(finished_run, tmp_path):
    """Per-system NLI outputs and the reference atoms are targets too, not only the KL table."""
    (finished_run / "results/nli/demo/_reference/atoms.parquet").rename(tmp_path / "atoms.parquet")
    (finished_run / "results/nli/demo/pertask/full.parquet").rename(tmp_path / "full.parquet")
    try:
        jobs = jobs_to_run(finished_run, TINY)
    finally:
        (tmp_path / "atoms.parquet").rename(finished_run / "results/nli/demo/_reference/atoms.parquet")
        (tmp_path / "full.parquet").rename(finished_run / "results/nli/demo/pertask/full.parquet")
    assert jobs.get("decompose_references") == 1 and jobs.get("score_nli", 0) >= 1


def copy_run(finished_run, workdir, *removed):
    """A copy of a finished run's results and resources in ``workdir``, without the ``removed`` paths
    (the copy has no .snakemake metadata, so only missing outputs make Snakemake run a job)."""
    workdir.mkdir()
    for item in ("results", "resources"):
        subprocess.run(["cp", "-a", str(finished_run / item), str(workdir / item)], check=True)
    for path in removed:
        if (workdir / path).is_dir():
            shutil.rmtree(workdir / path)
        else:
            (workdir / path).unlink()
    return workdir


def kill_when(workdir, configfile, target, started):
    """Start Snakemake on ``target``, SIGKILL its whole process group once ``started()`` is true."""
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
        str(configfile),
        "--cores",
        "1",
        target,
    ]
    log = workdir / "killed-run.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and not started():
        time.sleep(0.2)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    tail = log.read_text()[-3000:]
    assert started(), f"the run ended or was killed before the step under test began:\n{tail}"
    run_snakemake(workdir, "--unlock", configfile=configfile)  # docs/reliability.md: kills


def test_killed_training_resumes_and_completes(finished_run, tmp_path):
    """SIGKILL the pipeline during an alignment run, re-run, and get the same final artifact."""
    target = "results/aligned/demo/cap2mol/sft/history.parquet"
    config = edited_config(tmp_path, "align.training.max_steps", 6)
    run_dir = "results/aligned/demo/cap2mol/sft"
    uninterrupted = copy_run(finished_run, tmp_path / "uninterrupted", run_dir)
    run_snakemake(uninterrupted, target, configfile=config)
    workdir = copy_run(finished_run, tmp_path / "killed", run_dir)
    checkpoints = work_dir_for(workdir / run_dir / "adapter")
    # killed once a checkpoint is complete (a kill while the first is written leaves nothing to resume)
    kill_when(workdir, config, target, lambda: any(checkpoints.glob("checkpoint-*/trainer_state.json")))
    assert not (workdir / target).exists() or os.path.getmtime(workdir / target) < time.time() - 5
    run_snakemake(workdir, target, "--rerun-incomplete", configfile=config)
    log = (workdir / "logs/train_alignment/demo/cap2mol/sft.log").read_text()
    assert "resuming from" in log
    assert not checkpoints.exists()
    weights = f"{run_dir}/model/model.safetensors"
    assert (workdir / weights).read_bytes() == (uninterrupted / weights).read_bytes()
    kept = [read_metadata(run / target)["kept_step"] for run in (workdir, uninterrupted)]
    assert kept[0] == kept[1]  # the same best checkpoint, evaluated every step (tiny.yaml)


def test_killed_nli_stage_reruns_to_the_same_scores(finished_run, tmp_path):
    """SIGKILL the pipeline in the middle of the NLI stage, once some systems' pairs are in the cache
    and others are not scored yet; the re-run completes with the scores of the uninterrupted run."""
    workdir = copy_run(finished_run, tmp_path / "killed", "results/nli")
    scores = [
        path.relative_to(finished_run)
        for method in NLI_METHODS
        for path in sorted((finished_run / "results/nli").glob(f"*/*/{method}.parquet"))
    ]
    cache = workdir / "results/nli/cache" / PAIR_STORE
    kill_when(workdir, TINY, "all", lambda: len(list(cache.glob("*.parquet"))) >= 2)
    missing = [path for path in scores if not (workdir / path).exists()]
    assert missing, "the NLI stage finished before the kill"
    run_snakemake(workdir, "--rerun-incomplete", configfile=TINY)
    for path in scores:
        pd.testing.assert_frame_equal(
            read_artifact(workdir / path, "nli_scores"), read_artifact(finished_run / path, "nli_scores")
        )


def test_readme_excerpt_is_regenerated_from_a_finished_run(finished_run, tmp_path):
    """The README's demo excerpt comes from a run through the documented command, never by hand."""
    readme = tmp_path / "README.md"
    shutil.copy(REPO / "README.md", readme)
    tool = REPO / "tools/update_readme_results.py"
    subprocess.run([sys.executable, str(tool), str(finished_run), str(readme)], check=True)
    block = readme.read_text().split("<!-- demo-results:start -->")[1].split("<!-- demo-results:end -->")[0]
    table = (finished_run / "results/tables/demo/table2.md").read_text().strip()
    assert table in block and "| untrained | " in block
    figure = (finished_run / "results/figures/demo/training_loss.png").read_bytes()
    assert (tmp_path / "docs/training_loss.png").read_bytes() == figure


def without_timings(path):
    """A file's content, less the wall-clock measurements (seconds, tokens per second) of JSON files."""

    def drop(value):
        if isinstance(value, dict):
            return {k: drop(v) for k, v in value.items() if "second" not in k}
        return [drop(v) for v in value] if isinstance(value, list) else value

    return drop(json.loads(path.read_text())) if path.suffix == ".json" else path.read_bytes()


def test_a_second_run_from_clean_gives_the_same_bytes(finished_run, tmp_path):
    """Every table, score and NLI summary of two runs from clean are identical, timings aside (the demo NLI
    model's tokenizer once differed between runs, and with it every NLI number)."""
    second = tmp_path / "second"
    second.mkdir()
    run_snakemake(second, "--cores", "2", configfile=TINY, profile=str(REPO / "profiles/cpu"))
    results = finished_run / "results"
    patterns = ["tables/**/*", "scores/**/*.json", "nli/*/*.csv", "nli/*/*/*.json", "models/demo/*.json"]
    files = sorted(
        {p.relative_to(finished_run) for pattern in patterns for p in results.glob(pattern) if p.is_file()}
    )
    assert len(files) > 50
    differing = [str(f) for f in files if without_timings(finished_run / f) != without_timings(second / f)]
    assert not differing, differing


def test_chebi20_config_runs_offline_on_a_slice(tmp_path):
    """configs/chebi20.yaml's data stage and every model stage, on 300 ChEBI-20 rows with the tiny models;
    without NLI (its model comes from the Hub): scores, tables and figures only."""
    lines = fixture_path("chebi20/validation.txt").read_text().splitlines()
    chebi20 = {}
    for split, rows in (("train", lines[1:241]), ("validation", lines[241:271]), ("test", lines[271:301])):
        chebi20[split] = str(tmp_path / f"{split}.txt")
        (tmp_path / f"{split}.txt").write_text("\n".join([lines[0], *rows]) + "\n")
    config = yaml.safe_load(TINY.read_text())
    shipped = yaml.safe_load((REPO / "configs/chebi20.yaml").read_text())
    config["dataset"] = {**shipped["dataset"], "chebi20": chebi20}
    config["subsample"] = {**shipped["subsample"], "test_size": 12}
    config["nli"] = {**config.get("nli", {}), "enabled": False}
    path = tmp_path / "chebi20-slice.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "run"
    workdir.mkdir()
    run_snakemake(workdir, "--cores", "2", configfile=path, profile=str(REPO / "profiles/cpu"))
    results = workdir / "results"
    assert (results / "tables/chebi20/table2.md").stat().st_size > 0
    assert json.loads((results / "scores/chebi20/slerp+cpo/cap2mol.json").read_text())["n"] == 12
    assert not (results / "nli").exists()
