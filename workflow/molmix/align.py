"""Alignment fine-tuning (§3.2.2, Table 1) with QLoRA (Appx. J): SFT, DPO, CPO and KTO via TRL.

Each method's loss is TRL's own: ``SFTTrainer``, ``DPOTrainer``, ``CPOTrainer`` (``trl.experimental.cpo``
in TRL 1.16) and ``KTOTrainer``. The policy is the initial model with LoRA adapters; for DPO and KTO
the reference model is the same network with its adapters disabled (``ref_model=None`` with a
``peft_config``), so no second copy is loaded. QLoRA (4-bit NF4, double quantisation, bf16 compute)
is used on CUDA; on a machine without CUDA it is switched off with a warning and the same code trains
plain LoRA in fp32, unless ``quantization.force`` asks for the real 4-bit path (bitsandbytes runs NF4
on CPU too, about 8x slower). After training, the adapter is saved, the base is reloaded unquantised,
and the adapter is merged into it (``merge_and_unload``) for generation.

Note on "DPO": the author's DPO runs used TRL's former ``kto_pair`` loss (removed from TRL); our
``dpo`` is TRL's ``DPOTrainer`` with the configured ``loss_type`` (default ``sigmoid``, Eq. 3).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from molmix import lm
from molmix.artifacts import atomic_directory, atomic_path, read_artifact, write_artifact

log = logging.getLogger(__name__)

METHODS = ("sft", "dpo", "cpo", "kto")


def preference_records(negatives: pd.DataFrame, method: str) -> list[dict[str, Any]]:
    """Rows in the format each TRL trainer expects.

    sft: prompt/completion (the chosen side); dpo, cpo: prompt/chosen/rejected; kto: the unpaired
    form, each pair giving a desirable (chosen, label True) and an undesirable (rejected, False) example.
    """
    if negatives.empty:
        raise ValueError("no preference pairs to train on")
    rows = negatives[["prompt", "chosen", "rejected"]].to_dict("records")
    if method == "sft":
        return [{"prompt": r["prompt"], "completion": r["chosen"]} for r in rows]
    if method in ("dpo", "cpo"):
        return rows
    if method == "kto":
        records = []
        for r in rows:
            records.append({"prompt": r["prompt"], "completion": r["chosen"], "label": True})
            records.append({"prompt": r["prompt"], "completion": r["rejected"], "label": False})
        return records
    raise ValueError(f"unknown alignment method {method!r}; expected one of {METHODS}")


def use_quantization(cfg: Mapping[str, Any]) -> bool:
    """4-bit loading on CUDA when configured; off (with a warning) without CUDA unless forced."""
    if not cfg["load_in_4bit"]:
        return False
    if lm.has_cuda() or cfg.get("force", False):
        return True
    log.warning("no CUDA device: 4-bit quantisation switched off, training plain LoRA in fp32")
    return False


def bnb_config(cfg: Mapping[str, Any]):
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_use_double_quant=cfg["double_quant"],
        bnb_4bit_quant_type=cfg["quant_type"],
        bnb_4bit_compute_dtype=getattr(torch, cfg["compute_dtype"]),
    )


def lora_config(cfg: Mapping[str, Any]):
    from peft import LoraConfig

    return LoraConfig(
        r=cfg["r"],
        lora_alpha=cfg["alpha"],
        lora_dropout=cfg["dropout"],
        target_modules=cfg["target_modules"],
        bias="none",
        task_type="CAUSAL_LM",
    )


def load_policy(model_dir: str | Path, quantization: Mapping[str, Any], gradient_checkpointing: bool = False):
    """The initial model, 4-bit and prepared for k-bit training when quantisation is on.

    Gradient checkpointing follows the training settings (Fig. 14: off) and is never used without CUDA;
    PEFT's preparation would otherwise switch it on.
    """
    import torch
    from transformers import AutoModelForCausalLM

    lm.check_model_dir(model_dir)
    if not use_quantization(quantization):
        return lm.load_causal_lm(model_dir), False
    from peft import prepare_model_for_kbit_training

    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir),
        quantization_config=bnb_config(quantization),
        dtype=getattr(torch, quantization["compute_dtype"]),
    )
    checkpointing = gradient_checkpointing and lm.has_cuda()
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing), True


def trainer_for(
    method: str, model, tokenizer, records, cfg: Mapping[str, Any], seed: int, work_dir, peft_config
):
    """The TRL trainer of ``method`` with its loss settings from ``cfg[method]``."""
    from datasets import Dataset

    common = lm.training_arguments(cfg["training"], work_dir, seed)
    settings = cfg["methods"][method]
    dataset = Dataset.from_list(records)
    kwargs = {
        "model": model,
        "train_dataset": dataset,
        "processing_class": tokenizer,
        "peft_config": peft_config,
    }
    if method == "sft":
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(**common, max_length=settings["max_length"], completion_only_loss=True)
        return SFTTrainer(args=args, **kwargs)
    if method == "dpo":
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(
            **common,
            beta=settings["beta"],
            loss_type=[settings["loss_type"]],
            max_length=settings["max_length"],
        )
        return DPOTrainer(ref_model=None, args=args, **kwargs)
    if method == "cpo":
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        args = CPOConfig(
            **common,
            beta=settings["beta"],
            cpo_alpha=settings["cpo_alpha"],
            loss_type=settings["loss_type"],
            max_length=settings["max_length"],
            max_completion_length=settings["max_completion_length"],
        )
        return CPOTrainer(args=args, **kwargs)
    if method == "kto":
        from trl import KTOConfig, KTOTrainer

        for key, arg in (
            ("batch_size", "per_device_train_batch_size"),
            ("gradient_accumulation_steps", "gradient_accumulation_steps"),
        ):
            if settings.get(key):
                common[arg] = settings[key]
        if common["per_device_train_batch_size"] < 2:
            raise ValueError(
                "align.methods.kto.batch_size: KTO needs a per-device batch size of at least 2 (TRL "
                "estimates its KL term from mismatched pairs inside one batch; gradient accumulation "
                "does not count)"
            )
        args = KTOConfig(
            **common,
            beta=settings["beta"],
            desirable_weight=settings["desirable_weight"],
            undesirable_weight=settings["undesirable_weight"],
            max_length=settings["max_length"],
        )
        return KTOTrainer(ref_model=None, args=args, **kwargs)
    raise ValueError(f"unknown alignment method {method!r}; expected one of {METHODS}")


def count_over_length(records: Sequence[Mapping[str, Any]], tokenizer, settings: Mapping[str, Any]) -> int:
    """How many records exceed the method's ``max_length`` (or CPO's ``max_completion_length``).

    TRL truncates such examples silently; this count is logged so the loss of text is visible.
    """
    over = 0
    for record in records:
        prompt = len(tokenizer(record["prompt"]).input_ids)
        completions = [record[k] for k in ("completion", "chosen", "rejected") if k in record]
        longest = max(len(tokenizer(c, add_special_tokens=False).input_ids) for c in completions) + 1
        too_long = prompt + longest > settings["max_length"]
        if "max_completion_length" in settings:
            too_long |= longest > settings["max_completion_length"]
        over += too_long
    return over


def merge_adapter(init_dir: str | Path, adapter_dir: str | Path, out_dir: str | Path) -> None:
    """Reload the initial model unquantised, merge the LoRA adapter into it and save it with the tokenizer.

    The base keeps its stored dtype (bf16 for Meditron), so a merged 7B model is not written in fp32.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    lm.check_model_dir(init_dir)
    base = AutoModelForCausalLM.from_pretrained(str(init_dir), dtype="auto")
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    with atomic_directory(out_dir) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        lm.load_tokenizer(init_dir).save_pretrained(tmp)


def plot_history(history: pd.DataFrame, title: str, path: str | Path) -> None:
    from molmix.figures import plt

    fig, ax = plt.subplots(figsize=(5, 3))
    rows = history.dropna(subset=["loss"])
    ax.plot(rows["step"], rows["loss"], label="loss")
    margin = next((c for c in history.columns if c.endswith("rewards/margins")), None)
    if margin:
        rows = history.dropna(subset=[margin])
        ax.plot(rows["step"], rows[margin], label="reward margin")
    ax.set_xlabel("step")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def train_alignment(
    init_dir: str,
    negatives_paths: Sequence[str],
    method: str,
    cfg: Mapping[str, Any],
    seed: int,
    outputs: Mapping[str, str],
) -> pd.DataFrame:
    """Align ``init_dir`` with ``method`` on the preference pairs of every task.

    ``outputs``: adapter (folder), model (merged folder), history (Parquet), curve (PNG). Trainer
    checkpoints live beside the adapter; a re-run after a kill resumes from the newest one.
    """
    negatives = pd.concat([read_artifact(p, "negatives") for p in negatives_paths], ignore_index=True)
    if negatives.empty:
        raise ValueError(f"no preference pairs to train on in {', '.join(map(str, negatives_paths))}")
    records = preference_records(negatives, method)
    log.info("%s on %s: %d training records", method, init_dir, len(records))
    tokenizer = lm.load_tokenizer(init_dir)
    settings = cfg["methods"][method]
    over = count_over_length(records, tokenizer, settings)
    if over:
        log.warning(
            "%d of %d records exceed max_length=%s%s tokens; TRL truncates them "
            "(or drops them if no completion is left)",
            over,
            len(records),
            settings["max_length"],
            f" or max_completion_length={settings['max_completion_length']}"
            if "max_completion_length" in settings
            else "",
        )
    checkpointing = cfg["training"].get("gradient_checkpointing", False)
    model, quantized = load_policy(init_dir, cfg["quantization"], checkpointing)
    work_dir = Path(outputs["adapter"]).parent / ".checkpoints"
    run = {"cfg": cfg, "seed": seed, "method": method, "init": str(init_dir), "n": len(records)}
    checkpoint = lm.resumable_checkpoint(work_dir, run)  # before the trainer creates the folder
    trainer = trainer_for(method, model, tokenizer, records, cfg, seed, work_dir, lora_config(cfg["lora"]))
    trainer.train(resume_from_checkpoint=checkpoint)
    with atomic_directory(outputs["adapter"]) as tmp:
        trainer.model.save_pretrained(tmp)
    merge_adapter(init_dir, outputs["adapter"], outputs["model"])
    lm.finish_run(work_dir)
    history = pd.DataFrame(trainer.state.log_history)
    history.columns = [str(c) for c in history.columns]
    history.insert(0, "method", method)
    history["quantized"] = quantized
    write_artifact(history, outputs["history"], "training_log", params=cfg, seed=seed)
    plot_history(history, f"{method} from {Path(init_dir).name}", outputs["curve"])
    return history
