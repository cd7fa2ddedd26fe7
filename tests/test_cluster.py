"""Paper scale on SLURM: a dry run of configs/paper.yaml with profiles/slurm, and the sbatch flags
the SLURM executor plugin would build for each job from its resources."""

import re
from types import SimpleNamespace

import yaml

from conftest import REPO, planned_workflow, run_snakemake

GPU_RULES = {
    "train_pertask_model",
    "pretrain_base_model",
    "generate_negatives",
    "train_alignment",
    "generate_responses",
    # atomic NLI at paper scale: the Llama-3-8B decomposer and DeBERTa-v3-large
    "decompose_references",
    "decompose_captions",
    "score_nli",
}


class Resources(dict):
    __getattr__ = dict.__getitem__


def dry_run_jobs(tmp_path):
    result = run_snakemake(
        tmp_path, "-n", configfile=REPO / "configs/paper.yaml", profile=str(REPO / "profiles/slurm")
    )
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", result.stdout):
        name = re.match(r"(?:local)?rule (\w+):", block)
        found = re.search(r"^\s+resources: (.*)$", block, re.M)
        if not name or not found or name.group(1) == "all":
            continue
        resources = {}
        for item in found.group(1).split(", "):
            key, _, value = item.partition("=")
            resources[key] = int(value) if value.isdigit() else value
        threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
        jobs.append((name.group(1), Resources(resources), int(threads.group(1)) if threads else 1))
    return jobs


def sbatch_call(resources, threads):
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = SimpleNamespace(resources=resources, threads=threads, is_group=lambda: False)
    params = {
        "run_uuid": "run",
        "slurm_logfile": "log",
        "comment_str": "c",
        "account": "-A acct",
        "partition": f"-p {resources.get('slurm_partition')}",
        "workdir": None,
    }
    return get_submit_command(job, params) + set_gres_string(job)


def test_every_gpu_job_would_get_a_gpu_memory_and_time(tmp_path):
    jobs = dry_run_jobs(tmp_path)
    rules = {name for name, _, _ in jobs}
    assert {"train_alignment", "generate_responses", "merge_models", "download_model"} <= rules
    for name, resources, threads in jobs:
        if name in GPU_RULES:
            assert resources.get("gpu") == 1, name
            call = sbatch_call(resources, threads)
            assert "--gpus=1" in call, (name, call)
            assert f"--mem {resources['mem_mb']}" in call and f"-t {resources['runtime']}" in call
            assert "-p gpu" in call
        else:
            assert "gpu" not in resources, f"{name} declares a GPU it does not need"


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML loading that rejects a repeated key (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        repeated = {key for key in keys if keys.count(key) > 1}
        assert not repeated, f"repeated keys {repeated} at line {node.start_mark.line + 1}"
        return super().construct_mapping(node, deep=deep)


def test_slurm_profile_sends_every_gpu_rule_to_the_gpu_partition():
    """Including check_pertask_learning, which declares a GPU only when configs train per-task models."""
    profile = yaml.load((REPO / "profiles/slurm/config.yaml").read_text(), Loader=UniqueKeyLoader)
    partitions = {rule: res.get("slurm_partition") for rule, res in profile["set-resources"].items()}
    for rule in GPU_RULES | {"check_pertask_learning"}:
        assert partitions.get(rule) == "gpu", rule


def test_gres_override_is_accepted_by_the_plugin():
    resources = Resources(gres="gpu:1", gpu=0, mem_mb=40000, runtime=600, slurm_partition="gpu")
    call = sbatch_call(resources, 2)
    assert "--gres=gpu:1" in call and "--gpus" not in call


def test_only_downloads_are_local_rules(tmp_path, monkeypatch):
    """Downloads run in the submitting process (internet there); everything else goes to the cluster."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_TOKEN", raising=False)  # planning needs no Hugging Face token
    with planned_workflow(REPO / "configs/paper.yaml", tmp_path) as workflow:
        local = {rule.name for rule in workflow.rules if rule.name in workflow._localrules}
    assert local == {"download_dataset", "download_model"}
