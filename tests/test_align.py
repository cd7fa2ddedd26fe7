"""Alignment with TRL on tiny models: dataset formats, LoRA/QLoRA switch, reference handling, outputs."""

import logging
import math

import pandas as pd
import pytest

from conftest import PAIRS
from molmix.align import preference_records, train_alignment, use_quantization
from molmix.artifacts import read_artifact
from molmix.generate import generate_for_pairs
from molmix.training import work_dir_for

QUANT = {
    "load_in_4bit": True,
    "bnb_4bit_use_double_quant": True,
    "bnb_4bit_quant_type": "nf4",
    "bnb_4bit_compute_dtype": "bfloat16",
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


def config(method, quantize_without_cuda=False):
    """The settings the alignment rule passes (align without runs, one method), library keywords."""
    return {
        "training": {
            "num_train_epochs": 1,
            "max_steps": 2,
            "per_device_train_batch_size": 2,
            "learning_rate": 1e-3,
            "logging_steps": 1,
            "save_steps": 1,
        },
        "methods": {method: METHODS[method]},
        "lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": "all-linear"},
        "quantization": QUANT,
        "quantize_without_cuda": quantize_without_cuda,
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
    assert use_quantization(QUANT, without_cuda=True) is True
    assert use_quantization({**QUANT, "load_in_4bit": False}) is False


@pytest.mark.parametrize("method", ["sft", "dpo", "cpo", "kto"])
def test_each_method_trains_saves_merges_and_generates(tiny, negatives_file, tmp_path, method):
    out = outputs(tmp_path)
    history = train_alignment(str(tiny / "cap2mol"), [str(negatives_file)], method, config(method), 0, out)
    assert history["loss"].notna().any()
    assert (out["adapter"] / "adapter_config.json").exists() and out["curve"].exists()
    assert read_artifact(out["history"], "training_log")["method"].eq(method).all()
    if method in ("dpo", "kto"):
        # the reference is the adapter-disabled policy: before the first update (LoRA B = 0) policy and
        # reference agree, so rewards are 0 and the loss is DPO's log 2 or KTO's 1 - sigmoid(0)
        first = history.dropna(subset=["loss"]).iloc[0]
        assert first["rewards/margins"] == 0 and first["rewards/chosen"] == 0
        assert first["loss"] == pytest.approx({"dpo": math.log(2), "kto": 0.5}[method], abs=1e-5)
    frame, _ = generate_for_pairs(
        out["model"], PAIRS, "cap2mol", {"batch_size": 2, "max_new_tokens": 4}, method
    )
    assert len(frame) == len(PAIRS)


def test_real_4bit_qlora_path_runs_on_cpu(tiny, negatives_file, tmp_path):
    import bitsandbytes as bnb
    import torch

    from molmix.align import load_policy
    from molmix.lm import load_causal_lm

    policy, quantized = load_policy(tiny / "cap2mol", QUANT, quantize_without_cuda=True)
    layers = [m for m in policy.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized and layers and all(m.weight.quant_type == "nf4" for m in layers)
    assert not policy.is_activation_checkpointing
    out = outputs(tmp_path)
    history = train_alignment(
        str(tiny / "cap2mol"), [str(negatives_file)], "dpo", config("dpo", quantize_without_cuda=True), 0, out
    )
    assert history["quantized"].all()
    # the merged model is the unquantised base plus the trained adapter: plain float weights
    import json

    assert "quantization_config" not in json.loads((out["model"] / "config.json").read_text())
    init, merged = load_causal_lm(tiny / "cap2mol"), load_causal_lm(out["model"])
    weights = dict(init.named_parameters())
    changed = [n for n, p in merged.named_parameters() if not torch.equal(p, weights[n])]
    assert changed and all("proj" in n for n in changed)  # LoRA targets only; embeddings, head unchanged
    assert merged.dtype == torch.float32


def test_resume_uses_the_last_checkpoint(tiny, negatives_file, tmp_path, caplog):
    out = outputs(tmp_path)
    cfg = config("sft")
    # one whole epoch: transformers 5.24 trains one step past max_steps when it resumes mid-epoch
    cfg["training"]["max_steps"] = -1
    # a run killed after its last step: its trainer checkpoint is left in the work folder
    from molmix import align

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    original = align.merge_adapter
    align.merge_adapter = killed
    try:
        with pytest.raises(KeyboardInterrupt), caplog.at_level(logging.INFO):
            train_alignment(str(tiny / "cap2mol"), [str(negatives_file)], "sft", cfg, 0, out)
    finally:
        align.merge_adapter = original
    assert "discarding checkpoints" not in caplog.text and "resuming" not in caplog.text  # a fresh start
    caplog.clear()
    checkpoints = sorted(work_dir_for(out["adapter"]).glob("checkpoint-*"))
    assert len(checkpoints) == 1
    last = int(checkpoints[0].name.removeprefix("checkpoint-"))
    assert last >= 2
    with caplog.at_level(logging.INFO):
        history = train_alignment(
            str(tiny / "cap2mol"), [str(negatives_file)], "sft", cfg, 0, outputs(tmp_path)
        )
    assert f"resuming from {checkpoints[-1]}" in caplog.text
    assert not work_dir_for(out["adapter"]).exists()  # removed once the outputs are saved
    assert history.dropna(subset=["loss"])["step"].tolist() == list(
        range(1, last + 1)
    )  # restored, not retrained


def test_checkpoints_of_other_settings_are_not_resumed(tmp_path):
    from molmix.training import resumable_checkpoint

    (tmp_path / "checkpoint-5").mkdir(parents=True)
    (tmp_path / "checkpoint-5" / "trainer_state.json").write_text("{}")
    (tmp_path / "settings.hash").write_text("old")
    assert resumable_checkpoint(tmp_path, {"beta": 0.2}) is None
    assert not (tmp_path / "checkpoint-5").exists()


def test_a_checkpoint_killed_while_written_is_not_resumed(tmp_path):
    from molmix.training import resumable_checkpoint

    settings = {"beta": 0.1}
    assert resumable_checkpoint(tmp_path, settings) is None  # stamps the settings
    for step, state in ((1, "{}"), (2, None), (3, '{"global_st')):  # 2: no state yet; 3: cut short
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "adapter_model.safetensors").write_bytes(b"")
        if state is not None:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    assert resumable_checkpoint(tmp_path, settings) == str(tmp_path / "checkpoint-1")
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-1"]


def test_kto_needs_a_per_device_batch_above_one(write_config):
    from molmix.config import ConfigError, load_config

    key = "per_device_train_batch_size"
    with pytest.raises(ConfigError, match=f"align.methods.kto.{key}: KTO needs a per-device batch"):
        load_config(write_config({f"align.training.{key}": 1}))
    paper_like = load_config(write_config({f"align.training.{key}": 1, f"align.methods.kto.{key}": 2}))
    assert paper_like["align"]["methods"]["kto"][key] == 2
    with pytest.raises(ConfigError, match=f"align.methods.kto.{key}: 1 is less than the minimum of 2"):
        load_config(write_config({f"align.methods.kto.{key}": 1}))


def test_a_trl_setting_molmix_never_names_reaches_trl(tiny, write_config, tmp_path):
    """align.methods.dpo.precompute_ref_log_probs is nowhere in molmix: it passes through to DPOConfig."""
    from molmix.align import lora_config, trainer_for
    from molmix.config import load_config
    from molmix.lm import load_causal_lm, load_tokenizer

    align = load_config(write_config({"align.methods.dpo.precompute_ref_log_probs": True}))["align"]
    cfg = {key: value for key, value in align.items() if key not in ("runs", "methods")}
    cfg["methods"] = {"dpo": align["methods"]["dpo"]}  # what the alignment rule passes
    records = [{"prompt": "p", "chosen": "a", "rejected": "b"}] * 2
    model, tokenizer = load_causal_lm(tiny / "cap2mol"), load_tokenizer(tiny / "cap2mol")
    trainer = trainer_for(
        "dpo", model, tokenizer, records, cfg, 0, tmp_path / "adapter", lora_config(cfg["lora"])
    )
    assert trainer.args.precompute_ref_log_probs is True
    assert trainer.args.beta == align["methods"]["dpo"]["beta"] and trainer.args.loss_type == ["sigmoid"]
    assert trainer.args.output_dir == str(work_dir_for(tmp_path / "adapter"))


def test_over_long_records_are_counted(tiny):
    from molmix.align import count_over_length
    from molmix.lm import load_tokenizer

    tokenizer = load_tokenizer(tiny / "tok")
    records = [{"prompt": "C", "chosen": "C" * 100, "rejected": "CC"}, {"prompt": "C", "completion": "N"}]
    assert count_over_length(records, tokenizer, 1000) == 0
    assert count_over_length(records, tokenizer, 1000, max_completion_length=8) == 1
    assert count_over_length(records, tokenizer, 2) == 2


def test_an_empty_preference_file_is_an_error_naming_it(tiny, tmp_path):
    from molmix.artifacts import write_artifact

    empty = tmp_path / "negatives.parquet"
    columns = ["id", "task", "prompt", "chosen", "rejected", "negative_model"]
    write_artifact(pd.DataFrame({c: pd.Series(dtype=str) for c in columns}), empty, "negatives")
    with pytest.raises(ValueError, match=f"no preference pairs to train on in {empty}"):
        train_alignment(str(tiny / "cap2mol"), [str(empty)], "dpo", config("dpo"), 0, outputs(tmp_path))
    assert not (tmp_path / "adapter").exists()


def test_gradient_checkpointing_follows_the_config_on_cuda(tiny, monkeypatch):
    """PEFT's k-bit preparation turns checkpointing on by default; Fig. 14 trains without it."""
    from molmix import training
    from molmix.align import load_policy

    monkeypatch.setattr(training, "has_cuda", lambda: True)  # bitsandbytes runs the 4-bit load on CPU too
    quantization = {**QUANT, "bnb_4bit_compute_dtype": "float32"}
    assert not load_policy(tiny / "cap2mol", quantization, False)[0].is_activation_checkpointing
    assert load_policy(tiny / "cap2mol", quantization, True)[0].is_activation_checkpointing
