"""Alignment with TRL on tiny models: dataset formats, LoRA/QLoRA switch, reference handling, outputs,
evaluation on the validation pairs and the best checkpoint kept."""

import logging
import math
import re

import pandas as pd
import pytest

from conftest import PAIRS, REPO, run_snakemake
from molmix.align import kto_order, preference_records, train_alignment, use_quantization
from molmix.artifacts import read_artifact, read_metadata, write_artifact
from molmix.generate import generate_for_pairs
from molmix.negatives import preference_pairs
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


EVALUATION = {
    "eval_strategy": "steps",
    "eval_steps": 1,
    "per_device_eval_batch_size": 2,
    "load_best_model_at_end": True,
    "metric_for_best_model": "eval_loss",
    "greater_is_better": False,
}
"""The schema's align.training evaluation defaults (Fig. 14), evaluating every step (= save_steps)."""


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
            **EVALUATION,
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


@pytest.fixture(scope="module")
def validation_file(tmp_path_factory):
    """Validation preference pairs in both directions, with other rejected outputs than the training pairs'."""
    path = tmp_path_factory.mktemp("validation") / "pairs.parquet"
    mol2cap, _ = preference_pairs(PAIRS, "mol2cap", ["It is a base.", "The molecule is a salt.", "y"], "t5")
    cap2mol, _ = preference_pairs(PAIRS, "cap2mol", ["CCN", "C1CCC1", "CC=O"], "t5")
    write_artifact(pd.concat([mol2cap, cap2mol], ignore_index=True), path, "negatives")
    return path


@pytest.fixture(scope="module")
def swapped_file(negatives_file, tmp_path_factory):
    """The training pairs with chosen and rejected swapped: DPO's eval_loss on them rises at every step."""
    pairs = read_artifact(negatives_file, "negatives")
    pairs[["chosen", "rejected"]] = pairs[["rejected", "chosen"]].to_numpy()
    path = tmp_path_factory.mktemp("swapped") / "pairs.parquet"
    write_artifact(pairs, path, "negatives")
    return path


def assert_the_best_evaluated_step_is_kept(history_path):
    """The history holds eval_loss at every evaluated step, and its metadata names the argmin as kept."""
    history, meta = read_artifact(history_path, "training_log"), read_metadata(history_path)
    evaluated = history.dropna(subset=["eval_loss"])
    assert len(evaluated) >= 2
    best = int(evaluated.loc[evaluated["eval_loss"].idxmin(), "step"])
    assert (meta["kept_step"], meta["kept_by"]) == (best, "best eval_loss")
    assert meta["best_metric"] == pytest.approx(evaluated["eval_loss"].min())
    assert meta["last_step"] == history["step"].max()
    return meta


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


def test_kto_records_are_shuffled_so_a_batch_neighbour_is_another_prompt():
    """TRL's KTO reads records in order and takes its KL pairs from batch neighbours (2 a batch here)."""
    negatives = pd.DataFrame(
        {"prompt": [f"p{i}" for i in range(50)], "chosen": ["a"] * 50, "rejected": ["x"] * 50}
    )
    records = preference_records(negatives, "kto")
    assert all(records[i]["prompt"] == records[i + 1]["prompt"] for i in range(0, 100, 2))
    shuffled = kto_order(records, 0)
    assert sorted(map(str, shuffled)) == sorted(map(str, records)) and shuffled == kto_order(records, 0)
    same = sum(shuffled[i]["prompt"] == shuffled[i + 1]["prompt"] for i in range(0, 100, 2))
    assert same <= 2


def test_quantization_switches_off_without_cuda(caplog):
    with caplog.at_level(logging.WARNING):
        assert use_quantization(QUANT) is False
    assert "4-bit quantisation switched off" in caplog.text
    assert use_quantization(QUANT, without_cuda=True) is True
    assert use_quantization({**QUANT, "load_in_4bit": False}) is False


@pytest.mark.parametrize("method", ["sft", "dpo", "cpo", "kto"])
def test_each_method_trains_saves_merges_and_generates(
    tiny, negatives_file, validation_file, tmp_path, method
):
    out = outputs(tmp_path)
    history = train_alignment(
        str(tiny / "cap2mol"),
        [str(negatives_file)],
        method,
        config(method),
        0,
        out,
        validation_paths=[str(validation_file)],
    )
    assert history["loss"].notna().any()
    assert history.dropna(subset=["eval_loss"])["step"].tolist() == [1, 2]  # every eval_steps
    assert_the_best_evaluated_step_is_kept(out["history"])
    assert (out["adapter"] / "adapter_config.json").exists() and out["curve"].exists()
    assert read_artifact(out["history"], "training_log")["method"].eq(method).all()
    if method in ("dpo", "kto"):
        # the reference is the adapter-disabled policy: before the first update (LoRA B = 0) policy and
        # reference agree, so rewards are 0 and the loss is DPO's log 2 or KTO's 1 - sigmoid(0)
        first = history.dropna(subset=["loss"]).iloc[0]
        # (a KTO batch of shuffled records may hold one kind only: the other's rewards are then NaN)
        rewards = first[["rewards/chosen", "rewards/rejected", "rewards/margins"]].dropna()
        assert len(rewards) >= 1 + (method == "dpo") * 2 and (rewards == 0).all()
        assert first["loss"] == pytest.approx({"dpo": math.log(2), "kto": 0.5}[method], abs=1e-5)
    frame, _ = generate_for_pairs(
        out["model"], PAIRS, "cap2mol", {"batch_size": 2, "max_new_tokens": 4}, method
    )
    assert len(frame) == len(PAIRS)


def test_real_4bit_qlora_path_runs_on_cpu(tiny, negatives_file, validation_file, tmp_path):
    import bitsandbytes as bnb
    import torch

    from molmix.align import load_policy
    from molmix.lm import load_causal_lm

    policy, quantized = load_policy(tiny / "cap2mol", QUANT, quantize_without_cuda=True)
    layers = [m for m in policy.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized and layers and all(m.weight.quant_type == "nf4" for m in layers)
    assert not policy.is_activation_checkpointing
    # an evaluation (eval mode, no gradients) leaves the layers in their training layout: gradients
    # still reach the input of every 4-bit layer afterwards
    policy.eval()
    with torch.no_grad():
        policy(torch.tensor([[1, 2, 3]]))
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers)
    policy.train()
    inputs = policy.get_input_embeddings()(torch.tensor([[1, 2, 3]])).detach().requires_grad_()
    policy(inputs_embeds=inputs).logits.sum().backward()
    assert inputs.grad is not None and inputs.grad.abs().sum() > 0
    out = outputs(tmp_path)
    history = train_alignment(
        str(tiny / "cap2mol"),
        [str(negatives_file)],
        "dpo",
        config("dpo", quantize_without_cuda=True),
        0,
        out,
        validation_paths=[str(validation_file)],
    )
    assert history["quantized"].all()
    assert_the_best_evaluated_step_is_kept(out["history"])
    # the merged model is the unquantised base plus the trained adapter: plain float weights
    import json

    assert "quantization_config" not in json.loads((out["model"] / "config.json").read_text())
    init, merged = load_causal_lm(tiny / "cap2mol"), load_causal_lm(out["model"])
    weights = dict(init.named_parameters())
    changed = [n for n, p in merged.named_parameters() if not torch.equal(p, weights[n])]
    assert changed and all("proj" in n for n in changed)  # LoRA targets only; embeddings, head unchanged
    assert merged.dtype == torch.float32


def test_resume_uses_the_last_checkpoint(tiny, negatives_file, validation_file, tmp_path, caplog):
    out = outputs(tmp_path)
    cfg = config("sft")
    # one whole epoch: transformers 5.24 trains one step past max_steps when it resumes mid-epoch
    cfg["training"]["max_steps"] = -1
    # the last step kept (the best checkpoint's resume: the next test)
    cfg["training"].update(eval_strategy="no", load_best_model_at_end=False)
    # a run killed after its last step: its trainer checkpoint is left in the work folder
    from molmix import align

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    original = align.merge_adapter
    align.merge_adapter = killed
    try:
        with pytest.raises(KeyboardInterrupt), caplog.at_level(logging.INFO):
            train_alignment(
                str(tiny / "cap2mol"),
                [str(negatives_file)],
                "sft",
                cfg,
                0,
                out,
                validation_paths=[str(validation_file)],
            )
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
            str(tiny / "cap2mol"),
            [str(negatives_file)],
            "sft",
            cfg,
            0,
            outputs(tmp_path),
            validation_paths=[str(validation_file)],
        )
    assert f"resuming from {checkpoints[-1]}" in caplog.text
    assert not work_dir_for(out["adapter"]).exists()  # removed once the outputs are saved
    assert history.dropna(subset=["loss"])["step"].tolist() == list(
        range(1, last + 1)
    )  # restored, not retrained
    assert read_metadata(out["history"])["kept_by"] == "last step" and "eval_loss" not in history


def adapter_weights(folder):
    from safetensors.torch import load_file

    return load_file(folder / "adapter_model.safetensors")


def same_weights(a, b):
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def test_the_best_checkpoint_is_saved_merged_and_survives_a_kill(
    tiny, negatives_file, swapped_file, tmp_path, monkeypatch, caplog
):
    """Evaluated on pairs the training moves away from, DPO's best step is the first: its adapter is the
    one saved and merged, also when the run was killed after a newer checkpoint and resumed."""
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    from molmix import align
    from molmix.runtime import seed_everything

    cfg = config("dpo")
    cfg["training"].update(max_steps=-1, learning_rate=0.01)  # one epoch of 6 pairs: 3 steps

    def run(root, settings=cfg):
        seed_everything(0)  # the LoRA initialisation, as each pipeline step starts
        train_alignment(
            str(tiny / "cap2mol"),
            [str(negatives_file)],
            "dpo",
            settings,
            0,
            outputs(root),
            validation_paths=[str(swapped_file)],
        )
        return root

    best = run(tmp_path / "best")
    meta = assert_the_best_evaluated_step_is_kept(best / "history.parquet")
    assert (meta["kept_step"], meta["last_step"]) == (1, 3)
    last = run(tmp_path / "last", {**cfg, "training": {**cfg["training"], "load_best_model_at_end": False}})
    assert read_metadata(last / "history.parquet")["kept_step"] == 3
    assert not same_weights(adapter_weights(best / "adapter"), adapter_weights(last / "adapter"))
    merged = load_file(best / "model" / "model.safetensors")
    assert not same_weights(merged, load_file(last / "model" / "model.safetensors"))

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:  # before step 3 is evaluated and saved
                raise KeyboardInterrupt

    trainer_for = align.trainer_for

    def killed_at_step_3(*args, **kwargs):
        trainer = trainer_for(*args, **kwargs)
        trainer.add_callback(Kill())
        return trainer

    monkeypatch.setattr(align, "trainer_for", killed_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed")
    monkeypatch.setattr(align, "trainer_for", trainer_for)
    work = work_dir_for(tmp_path / "killed" / "adapter")
    assert sorted(p.name for p in work.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert same_weights(adapter_weights(work / "checkpoint-1"), adapter_weights(best / "adapter"))
    with caplog.at_level(logging.INFO):
        killed = run(tmp_path / "killed")
    assert f"resuming from {work / 'checkpoint-2'}" in caplog.text
    assert read_metadata(killed / "history.parquet")["kept_step"] == 1
    assert same_weights(adapter_weights(killed / "adapter"), adapter_weights(best / "adapter"))
    assert same_weights(load_file(killed / "model" / "model.safetensors"), merged)


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


def test_best_checkpoint_settings_are_checked_naming_the_key(write_config):
    from molmix.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"align.training.eval_steps: must equal save_steps \(20\)"):
        load_config(write_config({"align.training.eval_steps": 10}))
    with pytest.raises(ConfigError, match="align.methods.kto.eval_steps: must equal save_steps"):
        load_config(write_config({"align.methods.kto.eval_steps": 20}))
    with pytest.raises(
        ConfigError, match="align.training.eval_strategy: load_best_model_at_end needs eval_strategy"
    ):
        load_config(write_config({"align.training.eval_strategy": "epoch"}))
    last = load_config(
        write_config({"align.training.eval_strategy": "no", "align.training.load_best_model_at_end": False})
    )
    assert last["align"]["training"]["eval_strategy"] == "no"
    key = "per_device_eval_batch_size"
    with pytest.raises(
        ConfigError, match=f"align.methods.kto.{key}: KTO needs a per-device batch size of at least 2"
    ):
        load_config(write_config({f"align.training.{key}": 1}))
    assert load_config(write_config({f"align.training.{key}": 1, f"align.methods.kto.{key}": 2}))


def test_the_paper_config_keeps_the_best_checkpoint_as_fig14():
    from molmix.config import load_config

    align = load_config(REPO / "configs/paper.yaml")["align"]
    training = align["training"]
    assert training["load_best_model_at_end"] and training["per_device_eval_batch_size"] == 1
    assert (training["metric_for_best_model"], training["greater_is_better"]) == ("eval_loss", False)
    assert training["eval_steps"] == training["save_steps"]
    assert align["methods"]["kto"]["per_device_eval_batch_size"] == 2


def test_validation_negatives_are_made_and_every_alignment_run_evaluates_on_them(tmp_path):
    """The DAG: one generate_negatives job per split and direction; each alignment job reads both splits."""
    result = run_snakemake(tmp_path, "-n", configfile=REPO / "tests/config/tiny.yaml")
    jobs = re.split(r"\n(?=(?:local)?rule \w+:)", result.stdout)
    negatives = [job for job in jobs if job.startswith("rule generate_negatives:")]
    outputs_made = {re.search(r"output: (\S+?),", job).group(1) for job in negatives}
    assert outputs_made == {
        f"results/negatives/demo/{split}/{task}.parquet"
        for split in ("train", "validation")
        for task in ("mol2cap", "cap2mol")
    }
    alignment = [job for job in jobs if job.startswith("rule train_alignment:")]
    assert len(alignment) == 10
    for job in alignment:
        inputs = re.search(r"input: (.*)", job).group(1)
        assert "results/negatives/demo/validation/mol2cap.parquet" in inputs
        assert "results/negatives/demo/train/cap2mol.parquet" in inputs


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
        "dpo", model, tokenizer, records, cfg, 0, tmp_path / "adapter", lora_config(cfg["lora"]), records
    )
    assert trainer.args.precompute_ref_log_probs is True
    assert trainer.args.beta == align["methods"]["dpo"]["beta"] and trainer.args.loss_type == ["sigmoid"]
    assert trainer.args.output_dir == str(work_dir_for(tmp_path / "adapter"))
    assert trainer.args.load_best_model_at_end and trainer.args.metric_for_best_model == "eval_loss"
    assert trainer.eval_dataset is not None  # the validation pairs


def test_over_long_records_are_counted(tiny):
    from molmix.align import count_over_length
    from molmix.lm import load_tokenizer

    tokenizer = load_tokenizer(tiny / "tok")
    records = [{"prompt": "C", "chosen": "C" * 100, "rejected": "CC"}, {"prompt": "C", "completion": "N"}]
    assert count_over_length(records, tokenizer, 1000) == 0
    assert count_over_length(records, tokenizer, 1000, max_completion_length=8) == 1
    assert count_over_length(records, tokenizer, 2) == 2


def test_an_empty_preference_file_is_an_error_naming_it(tiny, negatives_file, tmp_path):
    from molmix.artifacts import write_artifact

    empty = tmp_path / "negatives.parquet"
    columns = ["id", "task", "prompt", "chosen", "rejected", "negative_model"]
    write_artifact(pd.DataFrame({c: pd.Series(dtype=str) for c in columns}), empty, "negatives")
    with pytest.raises(ValueError, match=f"no preference pairs to train on in {empty}"):
        train_alignment(
            str(tiny / "cap2mol"),
            [str(empty)],
            "dpo",
            config("dpo"),
            0,
            outputs(tmp_path),
            validation_paths=[],
        )
    with pytest.raises(ValueError, match=f"no preference pairs to evaluate on in {empty}"):
        train_alignment(
            str(tiny / "cap2mol"),
            [str(negatives_file)],
            "dpo",
            config("dpo"),
            0,
            outputs(tmp_path),
            validation_paths=[str(empty)],
        )
    assert not (tmp_path / "adapter").exists()


def test_gradient_checkpointing_follows_the_config_on_cuda(tiny, monkeypatch):
    """PEFT's k-bit preparation turns checkpointing on by default; Fig. 14 trains without it."""
    from molmix import training
    from molmix.align import load_policy

    monkeypatch.setattr(training, "has_cuda", lambda: True)  # bitsandbytes runs the 4-bit load on CPU too
    quantization = {**QUANT, "bnb_4bit_compute_dtype": "float32"}
    assert not load_policy(tiny / "cap2mol", quantization, False)[0].is_activation_checkpointing
    assert load_policy(tiny / "cap2mol", quantization, True)[0].is_activation_checkpointing
