"""profiles/slurm against a running scheduler: a slice of the tiny DAG (a local download, CPU-only jobs
and the GPU rule pretrain_base_model) submitted to a single-node SLURM cluster (tests/slurm/cluster.py)
through Snakemake's SLURM executor plugin. Faults: a job cancelled while it runs, the submitting
Snakemake killed and the run resumed, and a rule that fails on every attempt."""

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, run_snakemake
from slurm.cluster import start_cluster, stop_cluster

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

TARGETS = ("results/models/demo/base", "results/data/demo/summary.json")
LOCAL_RULES = {"download_dataset"}
SUBMITTED_RULES = {"subsample_dataset", "train_tokenizer", "init_base_model", "pretrain_base_model"}
CANCELLED_RULE = "subsample_dataset"  # a CPU rule: its retry asks for the same memory, which fits the node
# The cluster has no accounting database, so the plugin asks squeue; a short first status check keeps
# the small DAG from waiting 40 s per job; successful jobs' SLURM logs are kept for the checks.
TEST_CLUSTER_SETTINGS = (
    "--slurm-status-command=squeue",
    "--slurm-init-seconds-before-status-checks=2",
    "--slurm-keep-successful-logs",
)
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")


def write_slice_config(path, **overrides):
    """tests/config/tiny.yaml with a shorter base pretraining, plus dotted-key ``overrides``."""
    config = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())
    config["models"]["base"]["pretrain"]["max_steps"] = 6
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[leaf] = value
    path.write_text(yaml.safe_dump(config))
    return path


def slurm_command(workdir, configfile):
    return [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--workflow-profile", str(REPO / "profiles/slurm"),
        "--configfile", str(configfile),
        *TEST_CLUSTER_SETTINGS,
        *TARGETS,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = start_cluster(tmp_path_factory.mktemp("slurm") / "state")
    yield cluster
    stop_cluster()


@pytest.fixture(scope="module")
def slice_config(tmp_path_factory):
    return write_slice_config(tmp_path_factory.mktemp("config") / "slice.yaml")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, slice_config):
    workdir = tmp_path_factory.mktemp("local")
    run_snakemake(workdir, "--cores", "2", *TARGETS, configfile=slice_config)
    return workdir


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory, cluster, slice_config):
    """The slice on the cluster, with two faults: the first job of CANCELLED_RULE is cancelled with scancel
    once it runs, and the submitting Snakemake is killed (SIGKILL) while pretrain_base_model runs; then
    the run is resumed as docs/cluster.md says. Returns the working directory and both runs' output."""
    workdir = tmp_path_factory.mktemp("slurm-run")
    command = slurm_command(workdir, slice_config)
    killed_log = tmp_path_factory.mktemp("slurm-logs") / "killed-run.log"
    deadline = time.monotonic() + 600
    with killed_log.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
        cancelled = None
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the run did not reach pretrain_base_model in 600 s\n{killed_log.read_text()}")
            running = {
                job["comment"].split("_wildcards_")[0]: job["id"]
                for job in cluster.jobs()
                if job["state"] == "RUNNING"
            }
            if cancelled is None and f"rule_{CANCELLED_RULE}" in running:
                cancelled = running[f"rule_{CANCELLED_RULE}"]
                cluster.run("scancel", cancelled)
            elif cancelled and "rule_pretrain_base_model" in running:
                process.kill()
            time.sleep(0.2)
    killed = killed_log.read_text()
    assert cancelled, f"no {CANCELLED_RULE} job was seen running\n{killed}"
    assert process.returncode == -signal.SIGKILL, killed
    # Resume: cancel the killed run's jobs (named after its SLURM run ID), unlock, rerun what is incomplete.
    run_id = re.search(r"^SLURM run ID: (\S+)$", killed, re.M).group(1)
    cluster.run("scancel", f"--name={run_id}")
    subprocess.run([*command, "--unlock"], capture_output=True, check=True)
    resumed = subprocess.run([*command, "--rerun-incomplete"], capture_output=True, text=True, timeout=600)
    output = killed + resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output
    return workdir, output, cancelled


def submitted_jobs(cluster, output):
    """{rule: [SLURM job id, ...]} of the jobs Snakemake's log says it submitted, in order."""
    ids = [slurm_id for _, slurm_id, _ in SUBMITTED.findall(output)]
    comments = {job["id"]: job["comment"] for job in cluster.jobs()}
    rules = {}
    for slurm_id in ids:
        rule = re.match(r"rule_(\w+?)_wildcards_", comments[slurm_id]).group(1)
        rules.setdefault(rule, []).append(slurm_id)
    return rules


def declared_requests(output):
    """{rule: (threads, resources)} as Snakemake printed them for each job it ran."""
    requests = {}
    for block in re.split(r"\n(?=\[)", output):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        resources = re.search(r"^\s+resources: (.*)$", block, re.M)
        if rule and resources:
            threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
            pairs = dict(item.split("=", 1) for item in resources.group(1).split(", "))
            requests[rule.group(1)] = (int(threads.group(1)) if threads else 1, pairs)
    return requests


def test_jobs_ran_as_slurm_jobs_with_their_own_logs(cluster, slurm_run):
    workdir, output, _ = slurm_run
    jobs = submitted_jobs(cluster, output)
    assert set(jobs) == SUBMITTED_RULES
    for _, slurm_id, log in SUBMITTED.findall(output):
        assert cluster.show_job(slurm_id)["JobState"] in {"COMPLETED", "CANCELLED"}
        assert Path(log).is_file() and Path(log).is_relative_to(workdir / ".snakemake/slurm_logs")


def test_gpu_rule_got_the_gpu_memory_time_and_cpus_it_declares(cluster, slurm_run):
    _, output, _ = slurm_run
    threads, resources = declared_requests(output)["pretrain_base_model"]
    *killed, slurm_id = submitted_jobs(cluster, output)["pretrain_base_model"]  # the resumed run's job
    assert [cluster.show_job(j)["JobState"] for j in killed] == ["CANCELLED"]
    job = cluster.show_job(slurm_id)
    assert resources["gpu"] == "1" and job["TresPerJob"] == "gres:gpu:1"
    assert job["MinMemoryNode"] == f"{resources['mem_mb']}M"
    assert job["TimeLimit"] == time_limit(int(resources["runtime"]))
    assert job["NumCPUs"] == str(threads) == "2"
    assert job["Partition"] == "gpu" and job["JobState"] == "COMPLETED"


def test_cpu_rule_got_no_gpu_and_the_cpu_partition(cluster, slurm_run):
    _, output, _ = slurm_run
    threads, resources = declared_requests(output)["train_tokenizer"]
    (slurm_id,) = submitted_jobs(cluster, output)["train_tokenizer"]
    job = cluster.show_job(slurm_id)
    assert "gpu" not in resources and "TresPerJob" not in job
    assert job["MinMemoryNode"] == f"{resources['mem_mb']}M"
    assert job["TimeLimit"] == time_limit(int(resources["runtime"]))
    assert job["NumCPUs"] == str(threads)
    assert job["Partition"] == "cpu"


def test_local_rules_ran_on_the_submitting_host(cluster, slurm_run):
    workdir, output, _ = slurm_run
    for rule in LOCAL_RULES:
        assert re.search(rf"^localrule {rule}:", output, re.M), output
        assert not any(job["comment"].startswith(f"rule_{rule}_") for job in cluster.jobs())
    assert (workdir / "resources/datasets/demo/raw/manifest.json").is_file()


def test_cancelled_job_was_retried_and_the_run_completed(cluster, slurm_run):
    workdir, output, cancelled = slurm_run
    first, retry = submitted_jobs(cluster, output)[CANCELLED_RULE]
    assert first == cancelled and cluster.show_job(first)["JobState"] == "CANCELLED"
    assert cluster.show_job(retry)["JobState"] == "COMPLETED"
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in output
    assert all((workdir / target).exists() for target in TARGETS)


def test_outputs_equal_those_of_a_local_run(slurm_run, local_run):
    workdir, _, _ = slurm_run
    files = sorted(
        path.relative_to(local_run)
        for folder in ("results", "resources")
        for path in (local_run / folder).rglob("*")
        if path.is_file() and path.name != ".snakemake_timestamp"
    )
    assert len(files) > 15
    differing = [str(f) for f in files if comparable(local_run / f) != comparable(workdir / f)]
    assert not differing, differing


def test_a_rule_failing_for_good_stops_its_branch_with_a_clear_message(cluster, tmp_path):
    """A base architecture transformers refuses: init_base_model fails on both attempts, pretraining is
    never submitted, the data branch's job (already submitted) finishes, and the cause is in the output."""
    config = write_slice_config(tmp_path / "broken.yaml", **{"models.base.architecture.hidden_size": 31})
    workdir = tmp_path / "run"
    result = subprocess.run(slurm_command(workdir, config), capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    jobs = submitted_jobs(cluster, output)
    assert len(jobs["init_base_model"]) == 2 and "pretrain_base_model" not in jobs
    assert all(cluster.show_job(j)["JobState"] == "FAILED" for j in jobs["init_base_model"])
    assert "Error in rule init_base_model" in output and "logs/init_base_model/demo.log" in output
    assert "not a multiple of the number of attention heads" in output
    assert (workdir / "results/data/demo/summary.json").is_file()
    assert not (workdir / "results/models/demo/base").exists()


def time_limit(minutes):
    """SLURM's H:MM:SS (or D-HH:MM:SS) rendering of a time limit in minutes."""
    days, minutes = divmod(minutes, 24 * 60)
    text = f"{minutes // 60:02d}:{minutes % 60:02d}:00"
    return f"{days}-{text}" if days else text


def comparable(path):
    """A file's content, without the timing columns of a training history."""
    if path.name.endswith(".history.csv"):
        history = pd.read_csv(path)
        return history.drop(columns=[c for c in history if "runtime" in c or "per_second" in c]).to_dict()
    return path.read_bytes()
