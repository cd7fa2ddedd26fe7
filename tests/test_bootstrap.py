"""Model stages I around the training itself: model references, Hub downloads, the learning check."""

import json

import pytest

from conftest import PAIRS, REPO, run_snakemake
from molmix import lm
from molmix.artifacts import write_artifact
from molmix.bootstrap import caption_overlap, learning_check, smiles_validity


def test_download_without_network_names_the_model_and_leaves_nothing(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(lm.ModelError) as error:
        lm.download_model("language-plus-molecules/molt5-small-smiles2caption-LPM24", tmp_path / "model")
    message = str(error.value)
    assert "'language-plus-molecules/molt5-small-smiles2caption-LPM24' needs the Hugging Face Hub" in message
    assert "local folder path in the config" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_local_model_folders_are_used_in_place_and_bad_paths_fail_the_dry_run(tiny, tmp_path, write_config):
    overrides = {
        "models.pertask": {
            "source": "hub",
            "ids": {"mol2cap": str(tiny / "mol2cap"), "cap2mol": str(tiny / "cap2mol")},
        }
    }
    result = run_snakemake(
        tmp_path, "-n", "results/models/demo/merged/slerp", configfile=write_config(overrides)
    )
    assert str(tiny / "mol2cap") in result.stdout and "download_model" not in result.stdout
    assert "train_pertask_model" not in result.stdout

    overrides["models.pertask"]["ids"]["cap2mol"] = str(tmp_path / "no" / "such" / "model")
    result = run_snakemake(tmp_path, "-n", configfile=write_config(overrides), check=False)
    assert result.returncode != 0
    assert "models.pertask.ids.cap2mol" in result.stdout + result.stderr


def test_paper_config_downloads_every_hub_model_once(tmp_path):
    result = run_snakemake(tmp_path, "-n", configfile=REPO / "configs/paper.yaml")
    for name in (
        "epfl-llm--meditron-7b",
        "language-plus-molecules--Meditron7b-smiles2caption-LPM24",
        "language-plus-molecules--Meditron7b-caption2smiles-LPM24",
        "language-plus-molecules--molt5-large-smiles2caption-LPM24",
        "language-plus-molecules--molt5-large-caption2smiles-LPM24",
    ):
        assert result.stdout.count(f"output: resources/models/{name}\n") == 1
    assert "train_pertask_model" not in result.stdout and "train_negative_model" not in result.stdout


def test_learning_metrics_separate_right_from_wrong():
    references = ["The molecule is an acid.", "It is an organohalogen compound."]
    assert caption_overlap(references, references) == pytest.approx({"bleu2": 1.0, "rougeL": 1.0})
    wrong = caption_overlap(references, ["Blue sky.", "Green grass."])
    assert wrong["bleu2"] < 0.05 and wrong["rougeL"] == 0.0
    # '#' (triple bond) is valid SMILES; empty output and unclosed rings are not
    assert smiles_validity(["C#N", "CC(=O)O", "", "C1CC"]) == 0.5


def test_learning_check_reports_every_model_and_direction(tiny, tmp_path):
    test = tmp_path / "test.parquet"
    write_artifact(PAIRS, test, "pairs")
    models = {"untrained": str(tiny / "base"), "mol2cap": str(tiny / "mol2cap")}
    learning_check(models, str(test), {"batch_size": 2, "max_new_tokens": 4}, str(tmp_path / "check.json"))
    report = json.loads((tmp_path / "check.json").read_text())
    assert report["n"] == 3
    for name in models:
        assert {"bleu2", "rougeL", "validity"} <= set(report[name])
        assert 0 <= report[name]["validity"] <= 1
