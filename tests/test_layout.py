"""Path layout and model resolution: which folder each role resolves to, and what a run produces."""

from __future__ import annotations

import copy

import pytest

from conftest import REPO
from molmix import layout
from molmix.config import load_config
from molmix.layout import Experiment

DEMO = load_config(REPO / "config.yaml")
PAPER = load_config(REPO / "configs/paper.yaml")


def test_the_demo_builds_its_models_under_results():
    run = Experiment(DEMO)
    assert run.pertask_model("cap2mol") == "results/models/demo/pertask/cap2mol"
    assert run.negative_model("mol2cap") == "results/models/demo/negative/mol2cap"
    assert run.system_model("t5", "cap2mol") == run.negative_model("cap2mol")
    assert run.system_model("base", "mol2cap") == "results/models/demo/base"
    assert run.init_model("slerp") == "results/models/demo/merged/slerp"
    assert run.init_model("cap2mol") == run.pertask_model("cap2mol")
    assert run.system_model("slerp+cpo", "mol2cap") == "results/aligned/demo/slerp/cpo/model"
    assert run.hub_models() == {}


def test_paper_scale_models_come_through_the_download_folder():
    run = Experiment(PAPER)
    meditron = "language-plus-molecules/Meditron7b-caption2smiles-LPM24"
    assert run.pertask_model("cap2mol") == f"resources/models/{meditron.replace('/', '--')}"
    assert run.system_model("meditron", "cap2mol") == run.pertask_model("cap2mol")
    assert run.hub_models()["GT4SD--multitask-text-and-chemistry-t5-base-augm"] == (
        "GT4SD/multitask-text-and-chemistry-t5-base-augm"
    )
    assert run.input_prefixes("txtchem-t5")["mol2cap"] == "Caption the following SMILES: "
    assert run.input_prefixes("meditron") == {"mol2cap": "", "cap2mol": ""}
    assert run.nli_model().startswith("resources/models/") and "decomposer" in run.decomposer_models()


def test_an_existing_local_folder_is_used_in_place(tmp_path):
    config = copy.deepcopy(PAPER)
    config["models"]["pertask"]["ids"]["mol2cap"] = str(tmp_path)
    run = Experiment(config)
    assert run.pertask_model("mol2cap") == str(tmp_path)
    assert str(tmp_path) not in run.hub_models().values()


def test_an_alignment_job_sees_only_its_own_method():
    settings = Experiment(DEMO).alignment_settings("dpo")
    assert set(settings["methods"]) == {"dpo"} and "runs" not in settings
    assert settings["lora"] == DEMO["align"]["lora"]


def test_targets_cover_every_system_and_nli_only_when_enabled():
    targets = Experiment(DEMO).targets()
    for system in Experiment(DEMO).systems:
        assert f"results/scores/demo/{system}/cap2mol.json" in targets
        assert f"results/nli/demo/{system}/sentence.json" in targets
    assert (
        "results/tables/demo/table2.md" in targets
        and layout.ALIGNMENT_TABLE.format(dataset="demo") in targets
    )
    config = copy.deepcopy(DEMO)
    config["nli"]["enabled"] = False
    assert not [t for t in Experiment(config).targets() if t.startswith("results/nli/")]


def test_fig4_uses_the_sweep_merges_aligned_with_the_configured_method():
    weights = Experiment(DEMO).ratio_sweep_weights()
    assert weights == pytest.approx(
        {"slerp+cpo": 18 / 19, "slerp-1to1+cpo": 0.5, "slerp-1to4+cpo": 0.8, "slerp-4to1+cpo": 0.2}
    )
