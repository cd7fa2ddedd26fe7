"""The Hugging Face Hub: token, gated models, pinned revisions, the remote-code opt-in, checked URL files.

No test reaches the Hub: huggingface_hub's snapshot_download and get_token are replaced by fakes that
do what the real ones do (write the files and huggingface_hub's own commit records, or raise its
errors), and ChEBI-20 URLs are file:// URLs of the shared fixture.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import httpx2
import huggingface_hub
import pandas as pd
import pytest
import yaml
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

from conftest import REPO, planned_workflow, run_snakemake
from fixtures import fixture_path
from molmix.artifacts import DOWNLOAD_RECORD, model_origin
from molmix.config import ConfigError, hub_loading, hub_references, load_config, validate_config
from molmix.data import DataError, load_source, sha256_file
from molmix.lm import ModelError, download_model, fetched_commit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"
CHEMLLM = "AI4Chem/ChemLLM-7B-Chat"
PAPER = load_config(REPO / "configs/paper.yaml")


def http_error(cls, status: int, repo: str = "org/model"):
    request = httpx2.Request("GET", f"https://huggingface.co/api/models/{repo}")
    return cls(f"{status} Client Error for {repo}", response=httpx2.Response(status, request=request))


def fake_snapshot(commit: str = COMMIT, files=("config.json", "modeling_internlm2.py"), calls=None):
    """A snapshot_download that writes a repository's files and huggingface_hub's own commit record."""

    def snapshot_download(repo_id, *, revision=None, local_dir=None, **kwargs):
        if calls is not None:
            calls.append({"repo_id": repo_id, "revision": revision, **kwargs})
        root = Path(local_dir)
        for name in files:
            (root / name).write_text("{}" if name.endswith(".json") else "# remote code\n")
        trees = root / ".cache" / "huggingface" / "trees"
        trees.mkdir(parents=True)
        (trees / f"{commit}.json").write_text('{"format_version": 1, "files": {}}')
        return str(root)

    return snapshot_download


def merged(base: dict, update: dict) -> dict:
    """``update`` deep-merged into ``base``, as Snakemake layers --configfile over the embedded default."""
    out = dict(base)
    for key, value in update.items():
        out[key] = (
            merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def chebi20_layered() -> dict:
    """configs/chebi20.yaml over config.yaml, as `snakemake --configfile config.yaml configs/chebi20.yaml` reads it."""
    return merged(
        *(yaml.safe_load((REPO / name).read_text()) for name in ("config.yaml", "configs/chebi20.yaml"))
    )


def config_with(overrides: dict, base: Path | dict = REPO / "configs/paper.yaml") -> dict:
    config = base if isinstance(base, dict) else yaml.safe_load(base.read_text())
    for dotted, value in overrides.items():
        node = config
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return config


# --- the token and gated models -----------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        http_error(GatedRepoError, 401),
        http_error(RepositoryNotFoundError, 401),
        http_error(HfHubHTTPError, 401),
    ],
    ids=["gated", "401-not-found", "401"],
)
def test_a_gated_model_without_a_token_names_the_model_and_the_login_command(tmp_path, monkeypatch, error):
    def snapshot_download(*args, **kwargs):
        raise error

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(ModelError) as raised:
        download_model("epfl-llm/meditron-7b", tmp_path / "meditron")
    message = str(raised.value)
    assert "'epfl-llm/meditron-7b'" in message and "`hf auth login`" in message and "no token" in message
    assert not (tmp_path / "meditron").exists()


def test_a_token_without_access_to_a_gated_model_says_so(tmp_path, monkeypatch):
    def snapshot_download(*args, **kwargs):
        raise http_error(GatedRepoError, 403)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_from_the_login_file")
    with pytest.raises(
        ModelError, match=r"'meta-llama/Meta-Llama-3-8B-Instruct'.*has no access.*hf auth login"
    ):
        download_model("meta-llama/Meta-Llama-3-8B-Instruct", tmp_path / "llama")


def test_a_download_needs_no_token_and_passes_none_so_huggingface_hub_resolves_it(tmp_path, monkeypatch):
    """molmix never reads HF_TOKEN itself: huggingface_hub finds the environment or the login file."""
    calls = []
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot(calls=calls))
    download_model("org/open-model", tmp_path / "model")
    assert "token" not in calls[0]


def test_other_hub_failures_keep_the_offline_advice(tmp_path, monkeypatch):
    def snapshot_download(*args, **kwargs):
        raise http_error(HfHubHTTPError, 503)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    with pytest.raises(ModelError, match="'org/model' needs the Hugging Face Hub.*local folder path"):
        download_model("org/model", tmp_path / "model")


# --- revisions ------------------------------------------------------------------------------------


def test_a_download_fetches_the_pinned_revision_with_its_code_files_and_records_the_commit(
    tmp_path, monkeypatch
):
    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot(calls=calls))
    record = download_model(CHEMLLM, tmp_path / "chemllm", revision=COMMIT)
    # the whole repository: no pattern filters, so a remote-code model's Python files come too
    assert calls == [{"repo_id": CHEMLLM, "revision": COMMIT}]
    assert (tmp_path / "chemllm/modeling_internlm2.py").exists()
    assert record["commit"] == COMMIT and record["revision"] == COMMIT
    assert model_origin(tmp_path / "chemllm") == record
    assert json.loads((tmp_path / "chemllm" / DOWNLOAD_RECORD).read_text())["repo_id"] == CHEMLLM


def test_an_unpinned_download_records_the_commit_main_pointed_at(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot(commit=OTHER))
    assert download_model("org/model", tmp_path / "model")["commit"] == OTHER


def test_the_fetched_commit_is_read_from_per_file_records_when_no_tree_listing_is_cached(tmp_path):
    records = tmp_path / ".cache/huggingface/download"
    records.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (records / f"{name}.metadata").write_text(f'{COMMIT}\n"etag"\n1700000000.0\n')
    assert fetched_commit(tmp_path) == COMMIT
    (records / "other.metadata").write_text(f'{OTHER}\n"etag"\n1700000000.0\n')
    assert fetched_commit(tmp_path) is None  # two commits: not one snapshot


def test_revisions_must_be_full_commits_named_by_key():
    with pytest.raises(ConfigError, match=r"hub\.revisions\.org/model: '4bd7ff2' does not match"):
        validate_config(config_with({"hub.revisions": {"org/model": "4bd7ff2"}}))


def test_the_old_dataset_revision_key_points_to_hub_revisions():
    with pytest.raises(ConfigError, match=r"dataset\.lpm24\.revision: moved to hub\.revisions"):
        validate_config(config_with({"dataset.lpm24.revision": COMMIT}))


def test_every_hub_repository_of_the_paper_config_is_listed_with_its_keys():
    references = hub_references(PAPER)
    assert references["language-plus-molecules/LPM-24_train"] == {
        "repo_type": "dataset",
        "keys": ["dataset.lpm24.train_repo"],
    }
    assert references["GT4SD/multitask-text-and-chemistry-t5-base-augm"]["keys"] == [
        "baselines.txtchem-t5.mol2cap",
        "baselines.txtchem-t5.cap2mol",
    ]
    assert set(references) == {
        "epfl-llm/meditron-7b",
        "language-plus-molecules/Meditron7b-smiles2caption-LPM24",
        "language-plus-molecules/Meditron7b-caption2smiles-LPM24",
        "language-plus-molecules/molt5-large-smiles2caption-LPM24",
        "language-plus-molecules/molt5-large-caption2smiles-LPM24",
        "GT4SD/multitask-text-and-chemistry-t5-base-augm",
        CHEMLLM,
        "MoritzLaurer/DeBERTa-v3-large-mnli-fever-anli-ling-wanli",
        "meta-llama/Meta-Llama-3-8B-Instruct",
        "language-plus-molecules/LPM-24_train",
        "language-plus-molecules/LPM-24_train-extra",
    }
    # the embedded default builds everything: nothing comes from the Hub
    assert hub_references(load_config(REPO / "config.yaml")) == {}


def test_every_pin_of_the_paper_config_is_used_and_the_unpinned_ones_are_logged(caplog):
    assert set(PAPER["hub"]["revisions"]) <= set(hub_references(PAPER))
    with caplog.at_level(logging.WARNING, logger="molmix.config"):
        load_config(REPO / "configs/paper.yaml")
    [warning] = [r.getMessage() for r in caplog.records if "hub.revisions" in r.getMessage()]
    assert "MoritzLaurer/DeBERTa-v3-large-mnli-fever-anli-ling-wanli (nli.model.id)" in warning
    for pinned in PAPER["hub"]["revisions"]:
        assert pinned not in warning


def test_dataset_revisions_reach_the_hub_and_the_manifest_records_the_commit_read(tmp_path, monkeypatch):
    calls = []

    def snapshot_download(repo_id, *, repo_type=None, revision=None, allow_patterns=None, **kwargs):
        calls.append((repo_id, repo_type, revision))
        snapshot = tmp_path / "hub" / repo_id.replace("/", "--") / "snapshots" / (revision or OTHER)
        (snapshot / "data").mkdir(parents=True, exist_ok=True)
        split = allow_patterns[0].split("/")[1].split("-")[0]
        frame = pd.DataFrame({"molecule": ["CCO", "CCN"], "caption": [f"{split} a", f"{split} b"]})
        frame.to_parquet(snapshot / "data" / f"{split}-00000-of-00001.parquet")
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    cfg = PAPER["dataset"]
    revisions = {"language-plus-molecules/LPM-24_train": COMMIT}
    _, manifest = load_source(cfg, 0, tmp_path, revisions)
    assert ("language-plus-molecules/LPM-24_train", "dataset", COMMIT) in calls
    assert ("language-plus-molecules/LPM-24_train-extra", "dataset", None) in calls
    assert manifest["files"]["train"]["commit"] == manifest["files"]["train"]["revision"] == COMMIT
    assert manifest["files"]["test"]["commit"] == OTHER and manifest["files"]["test"]["revision"] is None


def test_a_local_snapshot_at_another_commit_than_the_pin_is_refused(tmp_path):
    root = tmp_path / "LPM-24_train"
    (root / "data").mkdir(parents=True)
    (root / ".cache/huggingface/trees").mkdir(parents=True)
    (root / f".cache/huggingface/trees/{OTHER}.json").write_text("{}")
    cfg = {
        **PAPER["dataset"],
        "lpm24": {
            **PAPER["dataset"]["lpm24"],
            "local_dirs": {"language-plus-molecules/LPM-24_train": str(root)},
        },
    }
    with pytest.raises(
        DataError, match=f"{root}: local snapshot .* at commit {OTHER}, but hub.revisions pins {COMMIT}"
    ):
        load_source(cfg, 0, tmp_path, {"language-plus-molecules/LPM-24_train": COMMIT})


# --- the remote-code opt-in -----------------------------------------------------------------------


def test_trust_remote_code_without_a_pinned_revision_is_refused_naming_the_key():
    config = config_with({"hub.trust_remote_code": [CHEMLLM], "hub.revisions": {}})
    with pytest.raises(
        ConfigError, match=r"hub\.trust_remote_code\.0: 'AI4Chem/ChemLLM-7B-Chat'.*hub\.revisions"
    ):
        validate_config(config)


def test_the_remote_code_opt_in_is_off_by_default():
    config = config_with({}, base=REPO / "config.yaml")
    validate_config(config)
    assert config["hub"] == {"revisions": {}, "trust_remote_code": []}
    assert hub_loading(config, CHEMLLM) == {"revision": None, "trust_remote_code": False}


def test_hub_loading_for_an_id_and_for_the_folder_its_download_made(tmp_path):
    revisions = {**PAPER["hub"]["revisions"], CHEMLLM: COMMIT}
    config = config_with({"hub.trust_remote_code": [CHEMLLM], "hub.revisions": revisions})
    validate_config(config)
    expected = {"revision": COMMIT, "trust_remote_code": True}
    assert hub_loading(config, CHEMLLM) == expected
    # the download_model folder, by name before it exists (dry runs) and by its record after
    assert hub_loading(config, "resources/models/AI4Chem--ChemLLM-7B-Chat") == expected
    folder = tmp_path / "downloaded"
    folder.mkdir()
    record = {"repo_id": CHEMLLM, "revision": COMMIT, "commit": COMMIT}
    (folder / DOWNLOAD_RECORD).write_text(json.dumps(record))
    assert hub_loading(config, folder) == expected
    # a pinned model without the opt-in, and a model that is neither
    assert hub_loading(config, "epfl-llm/meditron-7b") == {
        "revision": PAPER["hub"]["revisions"]["epfl-llm/meditron-7b"],
        "trust_remote_code": False,
    }
    assert hub_loading(config, "org/other") == {"revision": None, "trust_remote_code": False}
    # the pin moved after the download: the folder's code is not the pinned code
    (folder / DOWNLOAD_RECORD).write_text(json.dumps({**record, "commit": OTHER}))
    with pytest.raises(ConfigError, match=f"downloaded at commit {OTHER}, but hub.revisions pins"):
        hub_loading(config, folder)


def test_a_local_folder_may_be_trusted_without_a_revision(tmp_path):
    folder = tmp_path / "chemllm-copy"
    folder.mkdir()
    config = config_with({"hub.trust_remote_code": [str(folder)]}, base=REPO / "config.yaml")
    validate_config(config)
    assert hub_loading(config, folder) == {"revision": None, "trust_remote_code": True}
    assert hub_loading(config, tmp_path) == {"revision": None, "trust_remote_code": False}


def test_the_paper_config_opts_chem_llm_in_at_a_pinned_commit():
    assert PAPER["hub"]["trust_remote_code"] == [CHEMLLM]
    assert hub_loading(PAPER, "resources/models/AI4Chem--ChemLLM-7B-Chat")["trust_remote_code"]


# --- files fetched by URL -------------------------------------------------------------------------


def chebi20_config(locations: dict, sha256: dict | None = None) -> dict:
    return {"name": "chebi20", "source": "chebi20", "chebi20": {**locations, "sha256": sha256 or {}}}


def test_the_chebi20_fixture_is_molt5s_validation_file_as_configs_chebi20_pins_it():
    config = chebi20_layered()
    validate_config(config)
    assert (
        sha256_file(fixture_path("chebi20/validation.txt"))
        == config["dataset"]["chebi20"]["sha256"]["validation"]
    )


def test_a_url_file_matching_its_sha256_is_read_and_a_changed_one_is_an_error_naming_both(tmp_path):
    path = fixture_path("chebi20/validation.txt")
    url = path.as_uri()  # file:// goes through the URL download code path
    good = sha256_file(path)
    locations = {split: url for split in ("train", "validation", "test")}
    splits, manifest = load_source(chebi20_config(locations, dict.fromkeys(locations, good)), 0, tmp_path)
    assert len(splits["train"]) == 3301 and manifest["files"]["train"]["url"] == url
    assert manifest["files"]["test"]["sha256"] == good

    wrong = "0" * 64
    with pytest.raises(DataError) as raised:
        load_source(
            chebi20_config(locations, {**dict.fromkeys(locations, good), "validation": wrong}), 0, tmp_path
        )
    message = str(raised.value)
    assert (
        url in message
        and good in message
        and wrong in message
        and "dataset.chebi20.sha256.validation" in message
    )


def test_a_local_file_is_checked_when_a_sha256_is_configured(tmp_path):
    copy = tmp_path / "validation.txt"
    copy.write_bytes(fixture_path("chebi20/validation.txt").read_bytes() + b"\n")
    locations = dict.fromkeys(("train", "validation", "test"), str(copy))
    load_source(chebi20_config(locations), 0, tmp_path / "cache")  # no sha256: a local path needs none
    pinned = chebi20_layered()["dataset"]["chebi20"]["sha256"]
    with pytest.raises(
        DataError, match=f"{copy}: sha256 is {sha256_file(copy)}, but .* is {pinned['validation']}"
    ):
        load_source(chebi20_config(locations, {"validation": pinned["validation"]}), 0, tmp_path / "cache")


def test_a_url_without_a_sha256_is_refused_by_the_validator_naming_the_key():
    base = chebi20_layered()
    url = "https://raw.githubusercontent.com/blender-nlp/MolT5/main/ChEBI-20_data/train.txt"
    with pytest.raises(
        ConfigError,
        match=r"dataset\.chebi20\.sha256\.train: required because dataset\.chebi20\.train is a URL",
    ):
        validate_config(config_with({"dataset.chebi20.train": url}, base=base))
    validate_config(
        config_with({"dataset.chebi20.train": url, "dataset.chebi20.sha256.train": "a" * 64}, base=base)
    )


# --- the dry run and the pinning tool -------------------------------------------------------------


def test_the_paper_config_dry_runs_without_any_hugging_face_token(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-login"))  # no token file either
    result = run_snakemake(tmp_path, "-n", "--quiet", "rules", configfile=REPO / "configs/paper.yaml")
    assert "download_model" in result.stdout and "download_dataset" in result.stdout


def test_the_download_rules_are_given_the_pinned_revisions(tmp_path, monkeypatch):
    from types import SimpleNamespace

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with planned_workflow(REPO / "configs/paper.yaml", tmp_path) as workflow:
        revision = workflow.get_rule("download_model").params.revision  # rules/common.smk's hub_revision
        dataset = workflow.get_rule("download_dataset").params
    assert (
        revision(SimpleNamespace(hub_model="epfl-llm--meditron-7b"))
        == PAPER["hub"]["revisions"]["epfl-llm/meditron-7b"]
    )
    assert (
        revision(SimpleNamespace(hub_model="MoritzLaurer--DeBERTa-v3-large-mnli-fever-anli-ling-wanli"))
        is None
    )
    assert dataset.revisions == {
        "language-plus-molecules/LPM-24_train-extra": PAPER["hub"]["revisions"][
            "language-plus-molecules/LPM-24_train-extra"
        ]
    }


def test_pin_revisions_prints_one_pin_per_hub_repository_of_the_config(tmp_path):
    spec = importlib.util.spec_from_file_location("pin_revisions", REPO / "tools/pin_revisions.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    asked = []

    def resolve(repo_id, repo_type):
        asked.append((repo_id, repo_type))
        return COMMIT

    block = yaml.safe_load(tool.revisions_block(PAPER, resolve))
    assert block["hub"]["revisions"] == dict.fromkeys(hub_references(PAPER), COMMIT)
    assert ("language-plus-molecules/LPM-24_train-extra", "dataset") in asked
    assert ("epfl-llm/meditron-7b", "model") in asked
    # the printed block is valid configuration
    validate_config(config_with({"hub.revisions": block["hub"]["revisions"]}))
    assert yaml.safe_load(tool.revisions_block(load_config(REPO / "config.yaml"), resolve)) == {
        "hub": {"revisions": {}}
    }
