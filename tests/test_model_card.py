"""Model cards: every model folder the pipeline writes holds a README.md (base, data, method, settings,
scores, versions) written with the folder, the same bytes for the same inputs, beside unchanged files."""

import json

import pytest
from huggingface_hub import ModelCard

from conftest import PAIRS
from molmix import lm
from molmix.artifacts import DOWNLOAD_RECORD, write_artifact
from molmix.model_card import CARD_FILE, Card, data_file, render, score_files, wildcards

SECTIONS = ("## Base model", "## Data", "## Method", "## Scores", "## Library versions")
SFT = dict(  # SFTConfig keywords
    num_train_epochs=1,
    max_steps=2,
    per_device_train_batch_size=2,
    learning_rate=1e-3,
    max_length=256,
    logging_steps=1,
    save_steps=100,
)


def sections(text: str) -> dict[str, str]:
    """The card's sections by heading."""
    parts = text.split("\n## ")
    return {"## " + part.split("\n", 1)[0]: part.split("\n", 1)[1] for part in parts[1:]}


@pytest.fixture(scope="module")
def train_split(tmp_path_factory):
    """A raw train split where the layout puts it (dataset ``demo``)."""
    path = tmp_path_factory.mktemp("run") / "resources/datasets/demo/raw/train.parquet"
    write_artifact(PAIRS, path, "pairs", extra_metadata={"origin": {"repo": "org/molecules"}})
    return path


def train_pertask(tiny, train_split, out_dir):
    from molmix.bootstrap import train_causal_lm

    train_causal_lm(
        str(tiny / "base"), str(train_split), ["mol2cap"], SFT, 7, str(out_dir), str(out_dir) + ".history.csv"
    )
    return (out_dir / CARD_FILE).read_text()


def test_a_trained_model_has_a_card_with_base_data_method_settings_and_scores(tiny, train_split, tmp_path):
    out_dir = tmp_path / "results/models/demo/pertask/mol2cap"
    text = train_pertask(tiny, train_split, out_dir)
    card = ModelCard.load(out_dir / CARD_FILE)
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-generation"
    assert card.data.datasets == ["org/molecules"]  # the raw split's Hub origin
    assert card.data.base_model is None  # the base was built here, not fetched from the Hub
    found = sections(text)
    assert set(SECTIONS) <= set(found)
    assert str(tiny / "base") in found["## Base model"] and "fine-tuned from" in found["## Base model"]
    data = found["## Data"]
    assert "| demo | train | 3 |" in data and "3 mol2cap prompt/completion records" in data
    method = found["## Method"]
    assert "SFTTrainer" in method and "Seed: 7" in method
    assert "```yaml\nlearning_rate: 0.001\nlogging_steps: 1\nmax_length: 256\n" in method
    scores = found["## Scores"]
    assert "| training loss (last logged, step 2) |" in scores
    assert "`results/models/demo/learning_check.json`" in scores  # written later by another rule
    assert "`results/scores/demo/{system}/mol2cap.json`" in scores
    assert f"`{out_dir}.history.csv`" in scores
    assert "| transformers |" in found["## Library versions"]
    assert "work" not in text and ".tmp" not in text  # no path of the work folder


def test_the_card_is_the_same_bytes_on_a_second_save_and_the_only_file_added(tiny, train_split, tmp_path):
    out_dir = tmp_path / "results/models/demo/pertask/mol2cap"
    first = train_pertask(tiny, train_split, out_dir)
    assert train_pertask(tiny, train_split, out_dir) == first
    plain = tmp_path / "plain"
    lm.load_causal_lm(out_dir).save_pretrained(plain, safe_serialization=True)
    lm.load_tokenizer(out_dir).save_pretrained(plain)
    saved = {p.name for p in out_dir.iterdir()}
    assert saved == {p.name for p in plain.iterdir()} | {CARD_FILE}
    for name in ("model.safetensors", "config.json"):  # the weights are what save_pretrained writes
        assert (out_dir / name).read_bytes() == (plain / name).read_bytes()


def test_a_merge_writes_a_card_naming_its_models_and_mergekit_config(tiny, tmp_path):
    from molmix.merge import merge_models

    out_dir = tmp_path / "results/models/demo/merged/slerp"
    spec = {"method": "slerp", "ratio": [1, 18]}
    merge_models(spec, str(tiny / "mol2cap"), str(tiny / "cap2mol"), str(tiny / "base"), out_dir, 3)
    text = (out_dir / CARD_FILE).read_text()
    found = sections(text)
    assert str(tiny / "mol2cap") in found["## Base model"] and str(tiny / "cap2mol") in found["## Base model"]
    assert str(tiny / "base") not in found["## Base model"]  # slerp does not use the shared base
    assert "None: no training data." in found["## Data"]
    assert "mergekit's `slerp`" in found["## Method"] and "ratio:\n- 1\n- 18\n" in found["## Method"]
    assert "`results/scores/demo/{system}/cap2mol.json`" in found["## Scores"]
    assert ModelCard.load(out_dir / CARD_FILE).data.tags[-2:] == ["merge", "mergekit"]
    merge_models(spec, str(tiny / "mol2cap"), str(tiny / "cap2mol"), str(tiny / "base"), out_dir, 3)
    assert (out_dir / CARD_FILE).read_text() == text  # the same bytes again


def test_alignment_writes_cards_for_the_adapter_and_the_merged_model(tiny, negatives_file, tmp_path):
    from molmix.align import train_alignment

    run = tmp_path / "results/aligned/demo/cap2mol/dpo"
    outputs = {
        "adapter": run / "adapter",
        "model": run / "model",
        "history": run / "history.parquet",
        "curve": run / "loss.png",
    }
    cfg = {
        "training": {**SFT, "save_steps": 1, "eval_strategy": "steps", "eval_steps": 1},
        "methods": {"dpo": {"beta": 0.1, "max_length": 128}},
        "lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": "all-linear"},
        "quantization": {},
    }
    cfg["training"].update(load_best_model_at_end=True, metric_for_best_model="eval_loss")
    train_alignment(
        str(tiny / "cap2mol"),
        [str(negatives_file)],
        "dpo",
        cfg,
        0,
        outputs,
        validation_paths=[str(negatives_file)],
    )
    adapter = ModelCard.load(outputs["adapter"] / CARD_FILE)
    assert adapter.data.library_name == "peft"  # ours, in place of PEFT's template
    found = sections(adapter.text)
    assert "DPOTrainer" in found["## Method"] and "beta: 0.1" in found["## Method"]
    assert "preference pairs (validation: eval_loss)" in found["## Data"]
    assert "best eval_loss (the kept checkpoint, step" in found["## Scores"]
    assert "`results/scores/demo/cap2mol+dpo/mol2cap.json`" in found["## Scores"]
    assert "`results/tables/demo/alignment.md`" in found["## Scores"]
    model = (outputs["model"] / CARD_FILE).read_text()
    assert "is merged into the initial model" in model and "library_name: transformers" in model


def test_a_hub_base_model_and_dataset_go_to_the_card_metadata(tmp_path):
    base = tmp_path / "resources/models/org--base"
    base.mkdir(parents=True)
    record = {"repo_id": "org/base", "revision": None, "commit": "a" * 40}
    (base / DOWNLOAD_RECORD).write_text(json.dumps(record))
    card = Card(what="x", base_models=[str(base)], relation="finetune", method="y", seed=1)
    rendered = render(card, "results/models/demo/base")
    assert rendered.data.base_model == ["org/base"] and rendered.data.base_model_relation == "finetune"
    assert f"Hugging Face Hub `org/base` at `{'a' * 40}`" in rendered.text
    assert str(render(card, "results/models/demo/base")) == str(rendered)


def test_score_files_follow_the_layout():
    assert wildcards("results/models/{dataset}/merged/{merge}", "/x/y/results/models/demo/merged/ties/") == {
        "dataset": "demo",
        "merge": "ties",
    }
    assert wildcards("results/models/{dataset}/base", "results/models/demo/base.history.csv") is None
    aligned = score_files("results/aligned/demo/slerp-1to18/cpo/model")
    assert "results/scores/demo/slerp-1to18+cpo/mol2cap.json" in aligned
    assert "results/nli/demo/slerp-1to18+cpo/{method}.json" in aligned
    assert "results/models/demo/nli.metrics.json" in score_files("results/models/demo/nli")
    assert score_files("/tmp/somewhere/model") == {}


def test_data_file_reads_dataset_split_and_rows(train_split):
    data = data_file(train_split, what="pairs")
    assert (data.dataset, data.split, data.n, data.hub_dataset) == ("demo", "train", 3, "org/molecules")


def test_a_negative_model_card_points_to_the_preference_pairs_it_makes(tiny, train_split, tmp_path):
    from molmix.bootstrap import train_negative_model

    out_dir = tmp_path / "results/models/demo/negative/cap2mol"
    cfg = {
        "architecture": {"d_ff": 16, "d_model": 8, "num_heads": 2, "num_layers": 1},
        "max_length": 32,
        "training": {"max_steps": 1, "per_device_train_batch_size": 2, "logging_steps": 1, "save_steps": 10},
    }
    train_negative_model(
        str(tiny / "tok"), str(train_split), "cap2mol", cfg, 0, str(out_dir), str(tmp_path / "h.csv")
    )
    card = ModelCard.load(out_dir / CARD_FILE)
    assert card.data.pipeline_tag == "text2text-generation" and "negative-model" in card.data.tags
    found = sections(card.text)
    assert "None: trained from randomly initialised weights." in found["## Base model"]
    assert "| demo | train | 3 | pairs, as cap2mol source/target |" in found["## Data"]
    assert "`results/negatives/demo/validation/cap2mol.json`" in found["## Scores"]
