"""Alignment with TRL on tiny models: dataset formats, LoRA/QLoRA switch, reference handling, outputs."""

import logging

import pandas as pd
import pytest

from conftest import PAIRS
from molmix.align import preference_records, train_alignment, use_quantization
from molmix.artifacts import read_artifact
from molmix.generate import generate_for_pairs

QUANT = {
    "load_in_4bit": True,
    "double_quant": True,
    "quant_type": "nf4",
    "compute_dtype": "bfloat16",
    "force": False,
}
METHODS = {
    "sft": {"max_length": 128},
    "dpo": {"beta": 0.1, "loss_type": "sigmoid", "max_length": 128},
    "cpo": {
        "beta": 0.1,
        "cpo_alpha": 1.0,
        "loss_type": "sigmoid",
        "max_length": 128,
        "max_completion_length": 64,
    },
    "kto": {"beta": 0.1, "desirable_weight": 1.0, "undesirable_weight": 1.0, "max_length": 128},
}


def config(method, **quantization):
    return {
        "training": {
            "epochs": 1,
            "max_steps": 2,
            "batch_size": 2,
            "learning_rate": 1e-3,
            "logging_steps": 1,
            "save_steps": 1,
        },
        "methods": {method: METHODS[method]},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"},
        "quantization": {**QUANT, **quantization},
    }


def outputs(root):
    return {
        "adapter": root / "adapter",
        "model": root / "model",
        "history": root / "history.parquet",
        "curve": root / "loss.png",
    }


def test_each_trainer_gets_its_dataset_format():
    negatives = pd.DataFrame({"prompt": ["p1", "p2"], "chosen": ["a", "b"], "rejected": ["x", "y"]})
    assert preference_records(negatives, "sft") == [
        {"prompt": "p1", "completion": "a"},
        {"prompt": "p2", "completion": "b"},
    ]
    assert preference_records(negatives, "dpo")[0] == {"prompt": "p1", "chosen": "a", "rejected": "x"}
    assert preference_records(negatives, "kto")[:2] == [
        {"prompt": "p1", "completion": "a", "label": True},
        {"prompt": "p1", "completion": "x", "label": False},
    ]
    with pytest.raises(ValueError, match="no preference pairs"):
        preference_records(negatives.iloc[:0], "dpo")
    with pytest.raises(ValueError, match="unknown alignment method"):
        preference_records(negatives, "ppo")


def test_quantization_switches_off_without_cuda(caplog):
    with caplog.at_level(logging.WARNING):
        assert use_quantization(QUANT) is False
    assert "4-bit quantisation switched off" in caplog.text
    assert use_quantization({**QUANT, "force": True}) is True
    assert use_quantization({**QUANT, "load_in_4bit": False}) is False


@pytest.mark.parametrize("method", ["sft", "dpo", "cpo", "kto"])
def test_each_method_trains_saves_merges_and_generates(tiny, negatives_file, tmp_path, method):
    out = outputs(tmp_path)
    history = train_alignment(str(tiny / "cap2mol"), [str(negatives_file)], method, config(method), 0, out)
    assert history["loss"].notna().any()
    assert (out["adapter"] / "adapter_config.json").exists() and out["curve"].exists()
    assert read_artifact(out["history"], "training_log")["method"].eq(method).all()
    if method in ("dpo", "kto"):  # reference = adapter-disabled policy: rewards are logged
        assert any("rewards" in c for c in history.columns)
    frame, _ = generate_for_pairs(
        out["model"], PAIRS, "cap2mol", {"batch_size": 2, "max_new_tokens": 4}, method
    )
    assert len(frame) == len(PAIRS)


def test_real_4bit_qlora_path_runs_on_cpu(tiny, negatives_file, tmp_path):
    out = outputs(tmp_path)
    history = train_alignment(
        str(tiny / "cap2mol"), [str(negatives_file)], "dpo", config("dpo", force=True), 0, out
    )
    assert history["quantized"].all()
    # the merged model is the unquantised base plus the adapter: plain float weights, loadable anywhere
    import json

    merged = json.loads((out["model"] / "config.json").read_text())
    assert "quantization_config" not in merged


def test_resume_uses_the_last_checkpoint(tiny, negatives_file, tmp_path, caplog):
    out = outputs(tmp_path)
    cfg = config("sft")
    # a run killed after step 2: its trainer checkpoint is left in the work folder
    from molmix import align

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    original = align.merge_adapter
    align.merge_adapter = killed
    try:
        with pytest.raises(KeyboardInterrupt):
            train_alignment(str(tiny / "cap2mol"), [str(negatives_file)], "sft", cfg, 0, out)
    finally:
        align.merge_adapter = original
    checkpoints = sorted((tmp_path / ".checkpoints").glob("checkpoint-*"))
    assert [c.name for c in checkpoints] == ["checkpoint-2"]
    with caplog.at_level(logging.INFO):
        history = train_alignment(
            str(tiny / "cap2mol"), [str(negatives_file)], "sft", cfg, 0, outputs(tmp_path)
        )
    assert f"resuming from {checkpoints[-1]}" in caplog.text
    assert not (tmp_path / ".checkpoints").exists()  # removed once the outputs are saved
    assert history.dropna(subset=["loss"])["step"].tolist() == [1, 2]  # restored, not retrained


def test_checkpoints_of_other_settings_are_not_resumed(tmp_path):
    from molmix.lm import resumable_checkpoint

    (tmp_path / "checkpoint-5").mkdir(parents=True)
    (tmp_path / "checkpoint-5" / "trainer_state.json").write_text("{}")
    (tmp_path / "settings.hash").write_text("old")
    assert resumable_checkpoint(tmp_path, {"beta": 0.2}) is None
    assert not (tmp_path / "checkpoint-5").exists()
