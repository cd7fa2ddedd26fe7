"""Model stages I on tiny models built in the test: tokenizer, training, negatives, merging."""

import pytest

from conftest import ARCH, PAIRS
from molmix import lm
from molmix.generate import generate_for_pairs
from molmix.merge import check_compatible, merge_models, merge_specs, mergekit_config
from molmix.negatives import preference_pairs
from molmix.prompts import RESPONSE_MARKER, build_prompt, template_parts


def test_prompt_is_a_token_prefix_and_smiles_syntax_is_isolated(tiny):
    tokenizer = lm.load_tokenizer(tiny / "tok")
    for record in lm.sft_records(PAIRS, ["mol2cap", "cap2mol"]):
        prompt = tokenizer(record["prompt"]).input_ids
        assert tokenizer(record["prompt"] + record["completion"]).input_ids[: len(prompt)] == prompt
    tokens = tokenizer.tokenize("C#CC(=O)O")
    assert "#" in tokens and "(" in tokens and "=" in tokens
    assert tokenizer.decode(tokenizer("C#CC(=O)O</s>").input_ids, skip_special_tokens=True) == "C#CC(=O)O"


@pytest.mark.parametrize("task", ["mol2cap", "cap2mol"])
def test_each_fixed_part_of_a_prompt_template_is_one_token_and_decodes_unchanged(tiny, task):
    tokenizer = lm.load_tokenizer(tiny / "tok")
    head, tail = template_parts(task)
    source = "CC(=O)O" if task == "mol2cap" else "The molecule is an acid."
    prompt = build_prompt(task, source)
    ids = tokenizer(prompt, add_special_tokens=False).input_ids
    assert ids[0] == tokenizer.convert_tokens_to_ids(head) and ids[-1] == tokenizer.convert_tokens_to_ids(
        tail
    )
    assert ids[1:-1] == tokenizer(source, add_special_tokens=False).input_ids
    assert tokenizer.decode(ids) == prompt


def test_sft_learns_eos_and_loss_on_completion_only(tiny, tmp_path):
    cfg = dict(  # SFTConfig keywords
        num_train_epochs=1,
        max_steps=3,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        max_length=256,
        logging_steps=1,
        save_steps=100,
    )
    records = lm.sft_records(PAIRS, ["cap2mol"])
    history = lm.train_sft(tiny / "base", records, cfg, 0, tmp_path / "out")
    assert history["loss"].notna().sum() == 3
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(tmp_path / "x"), max_length=256, completion_only_loss=True, use_cpu=True, report_to=[]
    )
    tokenizer = lm.load_tokenizer(tiny / "base")
    trainer = SFTTrainer(
        model=lm.load_causal_lm(tiny / "base"),
        args=args,
        train_dataset=Dataset.from_list(records),
        processing_class=tokenizer,
    )
    example = trainer.train_dataset[0]
    ids, labels = example["input_ids"], example["labels"]
    assert (
        ids[-1] == tokenizer.eos_token_id and labels[-1] == tokenizer.eos_token_id
    )  # EOS appended, trained on
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    prompt_length = len(tokenizer(records[0]["prompt"]).input_ids)
    assert set(labels[:prompt_length]) == {-100} and labels[prompt_length:] == ids[prompt_length:]


def test_negative_pairs_drop_identical_and_keep_smiles_exactly():
    frame, counts = preference_pairs(PAIRS, "cap2mol", ["C#CC(=O)O", "C#N", "[Cl-]"], "t5")
    assert counts == {"inputs": 3, "rejected_equals_chosen": 1, "empty_rejected": 0, "pairs": 2}
    assert frame["rejected"].tolist() == ["C#N", "[Cl-]"] and frame["chosen"].tolist()[0].startswith(
        "c1ccccc1[N+]"
    )
    assert frame["prompt"].str.endswith(RESPONSE_MARKER).all()


def test_a_negative_smiles_of_the_gold_molecule_is_dropped():
    """Another spelling of the gold molecule is no dispreferred answer; an invalid one still is."""
    frame, counts = preference_pairs(PAIRS, "cap2mol", ["OC(=O)C#C", "c1ccccc1", "C(C)(C)Cl"], "t5")
    assert counts["rejected_equals_chosen"] == 2 and frame["rejected"].tolist() == ["c1ccccc1"]
    _, counts = preference_pairs(PAIRS, "cap2mol", ["C#CC(=O", "C1CC", ""], "t5")
    assert counts["rejected_equals_chosen"] == 0 and counts["empty_rejected"] == 1


def test_mergekit_configs_map_ratios_as_documented():
    slerp = mergekit_config({"method": "slerp", "ratio": [1, 18]}, "m2c", "c2m", "base")
    assert slerp["base_model"] == "m2c" and slerp["parameters"]["t"] == pytest.approx(18 / 19)
    ties = mergekit_config({"method": "ties", "ratio": [1, 18], "density": 0.2}, "m2c", "c2m", "base")
    assert ties["base_model"] == "base" and ties["models"][1]["parameters"] == {
        "density": 0.2,
        "weight": 18 / 19,
    }
    soup = mergekit_config({"method": "linear", "ratio": [1, 1]}, "m2c", "c2m", None)
    assert [m["parameters"]["weight"] for m in soup["models"]] == [0.5, 0.5] and "base_model" not in soup
    with pytest.raises(ValueError, match="needs the shared base"):
        mergekit_config({"method": "task_arithmetic", "ratio": [1, 1]}, "m2c", "c2m", None)


def test_merge_specs_names_the_sweep():
    specs = merge_specs(
        {
            "merges": {"soup": {"method": "linear", "ratio": [1, 1]}},
            "ratio_sweep": {"method": "slerp", "ratios": [[1, 18], [2.5, 1]]},
        }
    )
    assert list(specs) == ["soup", "slerp-1to18", "slerp-2.5to1"] and specs["slerp-1to18"]["ratio"] == [1, 18]


@pytest.mark.parametrize("method", ["slerp", "ties", "task_arithmetic", "linear"])
def test_every_merge_method_loads_and_generates(tiny, tmp_path, method):
    spec = {"method": method, "ratio": [1, 18], "density": 0.2}
    merge_models(
        spec, str(tiny / "mol2cap"), str(tiny / "cap2mol"), str(tiny / "base"), tmp_path / "merged", 0
    )
    assert (tmp_path / "merged" / "mergekit.yaml").exists()
    frame, _ = generate_for_pairs(
        tmp_path / "merged", PAIRS, "mol2cap", {"batch_size": 2, "max_new_tokens": 5}, "m"
    )
    assert len(frame) == 3 and set(frame.columns) >= {"prediction", "empty", "truncated"}


def test_incompatible_models_fail_before_merging(tiny, tmp_path):
    lm.init_causal_lm(tiny / "tok", {**ARCH, "num_hidden_layers": 3}, 0, tmp_path / "deeper")
    with pytest.raises(lm.ModelError, match="num_hidden_layers differs"):
        check_compatible({"a": tiny / "mol2cap", "b": tmp_path / "deeper"})
    (tmp_path / "notok").mkdir()
    lm.load_causal_lm(tiny / "base").save_pretrained(tmp_path / "notok")
    with pytest.raises(lm.ModelError, match="no tokenizer"):
        check_compatible({"a": tiny / "mol2cap", "b": tmp_path / "notok"})
