"""Alignment fine-tuning (§3.2.2, Table 1) with QLoRA (Appx. J): SFT, DPO, CPO and KTO via TRL.

Each method's loss is TRL's own: ``SFTTrainer``, ``DPOTrainer``, ``CPOTrainer`` (``trl.experimental.cpo``
in TRL 1.16) and ``KTOTrainer``. The policy is the initial model with LoRA adapters; for DPO and KTO
the reference model is the same network with its adapters disabled (``ref_model=None`` with a
``peft_config``), so no second copy is loaded. QLoRA (4-bit NF4, double quantisation, bf16 compute)
is used on CUDA; on a machine without CUDA it is switched off with a warning and the same code trains
plain LoRA in fp32, unless ``quantize_without_cuda`` asks for the real 4-bit path (bitsandbytes runs NF4
on CPU too, about 8x slower). After training, the adapter is saved, the base is reloaded unquantised,
and the adapter is merged into it (``merge_and_unload``) for generation.

The settings are the libraries' own keywords, passed through (:mod:`molmix.library_settings` checks
them): ``training`` and ``methods.<method>`` (which wins) of the method's TRL config, ``lora`` of
PEFT's ``LoraConfig``, ``quantization`` of transformers' ``BitsAndBytesConfig``.

Note on "DPO": the author's DPO runs used TRL's former ``kto_pair`` loss (removed from TRL); our
``dpo`` is TRL's ``DPOTrainer`` with the configured ``loss_type`` (default ``sigmoid``, Eq. 3).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from molmix import lm, training
from molmix.artifacts import atomic_directory, atomic_path, read_artifact, write_artifact
from molmix.library_settings import METHOD_CONFIGS, library_class
from molmix.names import ALIGN_METHODS

log = logging.getLogger(__name__)

TRAINERS = {
    "sft": ("trl", "SFTTrainer"),
    "dpo": ("trl", "DPOTrainer"),
    "cpo": ("trl.experimental.cpo", "CPOTrainer"),
    "kto": ("trl", "KTOTrainer"),
}
"""Each method's TRL trainer (module, class); its config class is ``library_settings.METHOD_CONFIGS``."""


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
    raise ValueError(f"unknown alignment method {method!r}; expected one of {ALIGN_METHODS}")


def use_quantization(quantization: Mapping[str, Any], without_cuda: bool = False) -> bool:
    """Quantised loading on CUDA when ``quantization`` asks for it; off (with a warning) without CUDA
    unless ``without_cuda``."""
    if not (quantization.get("load_in_4bit") or quantization.get("load_in_8bit")):
        return False
    if training.has_cuda() or without_cuda:
        return True
    log.warning("no CUDA device: 4-bit quantisation switched off, training plain LoRA in fp32")
    return False


def bnb_config(quantization: Mapping[str, Any]):
    """transformers' ``BitsAndBytesConfig`` of the ``quantization`` block (its own keywords)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(**quantization)


def lora_config(lora: Mapping[str, Any]):
    """PEFT's ``LoraConfig`` of the ``lora`` block (its own keywords) for a causal LM, adapters only."""
    from peft import LoraConfig

    return LoraConfig(**lora, bias="none", task_type="CAUSAL_LM")


def load_policy(
    model_dir: str | Path,
    quantization: Mapping[str, Any],
    gradient_checkpointing: bool = False,
    quantize_without_cuda: bool = False,
):
    """The initial model, quantised and prepared for k-bit training when quantisation is on.

    Gradient checkpointing follows the training settings (Fig. 14: off) and is never used without CUDA;
    PEFT's preparation would otherwise switch it on.
    """
    from transformers import AutoModelForCausalLM

    lm.check_model_dir(model_dir)
    if not use_quantization(quantization, quantize_without_cuda):
        return lm.load_causal_lm(model_dir), False
    from peft import prepare_model_for_kbit_training

    config = bnb_config(quantization)
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), quantization_config=config, dtype=config.bnb_4bit_compute_dtype
    )
    checkpointing = gradient_checkpointing and training.has_cuda()
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing), True


def method_settings(cfg: Mapping[str, Any], method: str) -> dict[str, Any]:
    """The TRL keywords of ``method``: ``cfg["training"]``, overridden by ``cfg["methods"][method]``."""
    return {**cfg["training"], **cfg["methods"][method]}


def trainer_for(
    method: str, model, tokenizer, records, cfg: Mapping[str, Any], seed: int, out_dir, peft_config
):
    """The TRL trainer of ``method`` with its config from :func:`method_settings`; checkpoints go to the
    work folder of ``out_dir`` (the adapter folder). DPO and KTO get ``ref_model=None``: the reference
    is the adapter-disabled policy."""
    import importlib

    from datasets import Dataset

    if method not in TRAINERS:
        raise ValueError(f"unknown alignment method {method!r}; expected one of {ALIGN_METHODS}")
    pipeline = {"completion_only_loss": True} if method == "sft" else {}
    arguments = training.trainer_arguments(method_settings(cfg, method), out_dir, seed, **pipeline)
    args = library_class(METHOD_CONFIGS[method])(**arguments)
    module, name = TRAINERS[method]
    reference = {"ref_model": None} if method in ("dpo", "kto") else {}
    return getattr(importlib.import_module(module), name)(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(records),
        processing_class=tokenizer,
        peft_config=peft_config,
        **reference,
    )


def count_over_length(
    records: Sequence[Mapping[str, Any]], tokenizer, max_length: int, max_completion_length: int | None = None
) -> int:
    """How many records exceed ``max_length`` tokens (or a completion ``max_completion_length``).

    TRL truncates such examples silently; this count is logged so the loss of text is visible.
    """
    over = 0
    for record in records:
        prompt = len(tokenizer(record["prompt"]).input_ids)
        completions = [record[k] for k in ("completion", "chosen", "rejected") if k in record]
        longest = max(len(tokenizer(c, add_special_tokens=False).input_ids) for c in completions) + 1
        too_long = prompt + longest > max_length
        if max_completion_length is not None:
            too_long |= longest > max_completion_length
        over += too_long
    return over


def _warn_over_length(records: Sequence[Mapping[str, Any]], tokenizer, args) -> None:
    """Log how many records the trainer's ``max_length`` (CPO: ``max_completion_length``) truncates."""
    limit = getattr(args, "max_completion_length", None)
    over = count_over_length(records, tokenizer, args.max_length, limit)
    if over:
        log.warning(
            "%d of %d records exceed max_length=%s%s tokens; TRL truncates them "
            "(or drops them if no completion is left)",
            over,
            len(records),
            args.max_length,
            f" or max_completion_length={limit}" if limit is not None else "",
        )


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

    ``cfg``: ``training``, ``methods`` (with ``method``'s settings), ``lora``, ``quantization`` and
    ``quantize_without_cuda``. ``outputs``: adapter (folder), model (merged folder), history
    (Parquet), curve (PNG). Trainer checkpoints go to the adapter's work folder; a re-run after a kill
    resumes from the newest one (:func:`molmix.training.train_and_save`).
    """
    negatives = pd.concat([read_artifact(p, "negatives") for p in negatives_paths], ignore_index=True)
    if negatives.empty:
        raise ValueError(f"no preference pairs to train on in {', '.join(map(str, negatives_paths))}")
    records = preference_records(negatives, method)
    log.info("%s on %s: %d training records", method, init_dir, len(records))
    tokenizer = lm.load_tokenizer(init_dir)
    checkpointing = method_settings(cfg, method).get("gradient_checkpointing", False)
    model, quantized = load_policy(
        init_dir, cfg["quantization"], checkpointing, cfg.get("quantize_without_cuda", False)
    )

    def make_trainer():
        lora = lora_config(cfg["lora"])
        trainer = trainer_for(method, model, tokenizer, records, cfg, seed, outputs["adapter"], lora)
        _warn_over_length(records, tokenizer, trainer.args)
        return trainer

    def save(trainer):
        with atomic_directory(outputs["adapter"]) as tmp:
            trainer.model.save_pretrained(tmp)
        merge_adapter(init_dir, outputs["adapter"], outputs["model"])

    run = {"cfg": cfg, "seed": seed, "method": method, "init": str(init_dir), "n": len(records)}
    trainer, _ = training.train_and_save(make_trainer, run, outputs["adapter"], save)
    history = pd.DataFrame(trainer.state.log_history)
    history.columns = [str(c) for c in history.columns]
    history.insert(0, "method", method)
    history["quantized"] = quantized
    write_artifact(history, outputs["history"], "training_log", params=cfg, seed=seed)
    plot_history(history, f"{method} from {Path(init_dir).name}", outputs["curve"])
    return history
