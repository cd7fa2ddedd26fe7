"""Alignment fine-tuning (§3.2.2, Table 1) with QLoRA (Appx. J): SFT, DPO, CPO and KTO via TRL.

Each method's loss is TRL's own: ``SFTTrainer``, ``DPOTrainer``, ``CPOTrainer`` (``trl.experimental.cpo``
in TRL 1.16) and ``KTOTrainer``. The policy is the initial model with LoRA adapters; for DPO and KTO
the reference model is the same network with its adapters disabled (``ref_model=None`` with a
``peft_config``), so no second copy is loaded. QLoRA (4-bit NF4, double quantisation, bf16 compute)
is used on CUDA; on a machine without CUDA it is switched off with a warning and the same code trains
plain LoRA in fp32, unless ``quantize_without_cuda`` asks for the real 4-bit path (bitsandbytes runs NF4
on CPU too, about 8x slower). Every ``eval_steps`` the run is evaluated on the preference pairs of the
subsampled validation split, and with Fig. 14's ``load_best_model_at_end`` the checkpoint with the
lowest ``eval_loss`` is the one kept (:func:`kept_checkpoint`; the history's metadata names its step).
After training, the kept adapter is saved, the base is reloaded unquantised, and the adapter is merged
into it (``merge_and_unload``) for generation.

The settings are the libraries' own keywords, passed through (:mod:`molmix.library_settings` checks
them): ``training`` and ``methods.<method>`` (which wins) of the method's TRL config, ``lora`` of
PEFT's ``LoraConfig``, ``quantization`` of transformers' ``BitsAndBytesConfig``.

Note on "DPO": the author's DPO runs used TRL's former ``kto_pair`` loss (removed from TRL); our
``dpo`` is TRL's ``DPOTrainer`` with the configured ``loss_type`` (default ``sigmoid``, Eq. 3), and
``loss_type: kto_pair`` restores that loss (:func:`kto_pair_loss`, :func:`kto_pair_trainer`) to run the
author's recipe (configs/author-code.yaml, docs/deviations.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from molmix import lm, training
from molmix.artifacts import atomic_directory, atomic_path, read_artifact, write_artifact
from molmix.library_settings import METHOD_CONFIGS, library_class
from molmix.model_card import Card, data_file, training_results, write_card
from molmix.names import ALIGN_METHODS

log = logging.getLogger(__name__)

TRAINERS = {
    "sft": ("trl", "SFTTrainer"),
    "dpo": ("trl", "DPOTrainer"),
    "cpo": ("trl.experimental.cpo", "CPOTrainer"),
    "kto": ("trl", "KTOTrainer"),
}
"""Each method's TRL trainer (module, class); its config class is ``library_settings.METHOD_CONFIGS``."""
KTO_PAIR = "kto_pair"
"""The DPO ``loss_type`` TRL's DPOTrainer had until it was removed, which molmix implements."""


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


def kto_order(records: Sequence[Mapping[str, Any]], seed: int) -> list[Mapping[str, Any]]:
    """KTO's records in a seeded random order.

    TRL's ``KTOTrainer`` reads its records in order (``train_sampling_strategy`` is ``sequential``) and
    estimates its KL reference point by pairing each record with its neighbour's completion inside a
    batch. In :func:`preference_records`' order the neighbour is the same prompt's other completion and
    one direction's records all come before the other's, so they are shuffled, as the author's kto.py
    shuffles its unpaired rows.
    """
    import random

    order = list(records)
    random.Random(seed).shuffle(order)
    return order


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


def method_lora(cfg: Mapping[str, Any], method: str) -> dict[str, Any]:
    """The LoraConfig keywords of ``method``: ``cfg["lora"]``, overridden by ``cfg["lora_by_method"][method]``."""
    return {**cfg["lora"], **(cfg.get("lora_by_method") or {}).get(method, {})}


def load_policy(
    model_dir: str | Path,
    quantization: Mapping[str, Any],
    gradient_checkpointing: bool = False,
    quantize_without_cuda: bool = False,
    dtype: str = "float32",
):
    """The initial model, quantised and prepared for k-bit training when quantisation is on, else in
    ``dtype`` (``align.policy_dtype``; bfloat16 is the opt-in bf16 LoRA mode of docs/paper-scale.md).

    Gradient checkpointing follows the training settings (Fig. 14: off) and is never used without CUDA;
    PEFT's preparation would otherwise switch it on.
    """
    from transformers import AutoModelForCausalLM

    lm.check_model_dir(model_dir)
    if not use_quantization(quantization, quantize_without_cuda):
        return lm.load_causal_lm(model_dir, dtype), False
    from peft import prepare_model_for_kbit_training

    config = bnb_config(quantization)
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), quantization_config=config, dtype=config.bnb_4bit_compute_dtype
    )
    if not training.has_cuda():
        keep_cpu_4bit_layout_for_training(model)
    checkpointing = gradient_checkpointing and training.has_cuda()
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing), True


def keep_cpu_4bit_layout_for_training(model) -> None:
    """Keep bitsandbytes' 4-bit layers in their training layout during evaluation on CPU.

    On a CPU with AVX512-BF16, bitsandbytes 0.50 repacks a 4-bit weight for an inference kernel on its
    first forward pass in eval mode without gradients (an evaluation) and keeps it so: the training
    steps after it then run through that kernel, which passes no gradient back to earlier layers (their
    LoRA adapters stop learning), and a layer whose output width is not a multiple of 32 fails.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def kto_pair_loss(chosen_logratios, rejected_logratios, beta: float):
    """TRL's former ``kto_pair`` DPO loss: KTO (Ethayarajh et al., 2024) on preference pairs.

    ``chosen_logratios`` and ``rejected_logratios`` are log π(y|x) − log π_ref(y|x) of each pair's chosen
    and rejected completion. KTO's reference point is estimated per batch, for each side from the other
    side: z_w = max(0, mean chosen), z_l = max(0, mean rejected) (not detached, as in TRL). The loss is the
    mean over the 2B terms 1 − σ(β (r_w − z_l)) and 1 − σ(β (z_w − r_l)).
    """
    import torch

    chosen_reference = chosen_logratios.mean().clamp(min=0)
    rejected_reference = rejected_logratios.mean().clamp(min=0)
    desirable = 1 - torch.sigmoid(beta * (chosen_logratios - rejected_reference))
    undesirable = 1 - torch.sigmoid(beta * (chosen_reference - rejected_logratios))
    return torch.cat([desirable, undesirable]).mean()


def completion_logps(logits, input_ids, completion_mask):
    """Each sequence's summed log-probability of its completion tokens (where ``completion_mask`` is 1)."""
    import torch

    targets = input_ids[:, 1:]
    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (logps * completion_mask[:, 1:]).sum(dim=1)


def kto_pair_trainer():
    """TRL's ``DPOTrainer`` computing :func:`kto_pair_loss` instead of its own losses.

    Data, collation, reference (the adapter-disabled policy, or ``ref_model``), evaluation and
    checkpoints stay TRL's; the rewards it logs are β times the log-ratios, as TRL's DPO logs them.
    """
    import torch
    from trl import DPOTrainer

    class KTOPairDPOTrainer(DPOTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            forward = {
                "input_ids": inputs["input_ids"],
                "attention_mask": inputs["attention_mask"],
                "use_cache": False,
            }
            outputs = model(**forward)
            logps = completion_logps(outputs.logits, inputs["input_ids"], inputs["completion_mask"])
            with torch.no_grad():
                if self.ref_model is None:
                    with self.accelerator.unwrap_model(model).disable_adapter():
                        reference = model(**forward).logits
                else:
                    reference = self.ref_model(**forward).logits
                ref_logps = completion_logps(reference, inputs["input_ids"], inputs["completion_mask"])
            chosen, rejected = (logps - ref_logps).chunk(2)  # the collator stacks chosen, then rejected
            loss = kto_pair_loss(chosen, rejected, self.beta)
            self._log_rewards(self.beta * chosen.detach(), self.beta * rejected.detach(), logps.detach())
            return (loss, outputs) if return_outputs else loss

        def _log_rewards(self, chosen_rewards, rejected_rewards, logps):
            metrics = self._metrics["train" if self.model.training else "eval"]
            chosen_logps, rejected_logps = logps.chunk(2)
            for name, value in (
                ("rewards/chosen", chosen_rewards),
                ("rewards/rejected", rejected_rewards),
                ("rewards/margins", chosen_rewards - rejected_rewards),
                ("rewards/accuracies", (chosen_rewards > rejected_rewards).float()),
                ("logps/chosen", chosen_logps),
                ("logps/rejected", rejected_logps),
            ):
                metrics[name].append(self.accelerator.gather_for_metrics(value).mean().item())

    return KTOPairDPOTrainer


def trainer_class(method: str, args):
    """The trainer of ``method`` for its TRL config ``args``: :data:`TRAINERS`', or for DPO with
    ``loss_type: kto_pair`` :func:`kto_pair_trainer`'s."""
    import importlib

    if method == "dpo" and KTO_PAIR in args.loss_type:
        if len(args.loss_type) > 1:
            raise ValueError(
                f"loss_type {KTO_PAIR} cannot be combined with other DPO losses: {args.loss_type}"
            )
        return kto_pair_trainer()
    module, name = TRAINERS[method]
    return getattr(importlib.import_module(module), name)


def method_settings(cfg: Mapping[str, Any], method: str) -> dict[str, Any]:
    """The TRL keywords of ``method``: ``cfg["training"]``, overridden by ``cfg["methods"][method]``."""
    return {**cfg["training"], **cfg["methods"][method]}


def trainer_for(
    method: str,
    model,
    tokenizer,
    records,
    cfg: Mapping[str, Any],
    seed: int,
    out_dir,
    peft_config,
    eval_records=None,
):
    """The TRL trainer of ``method`` with its config from :func:`method_settings`; checkpoints go to the
    work folder of ``out_dir`` (the adapter folder). ``eval_records`` (the validation split's, in the
    method's format) are what ``eval_loss`` is computed on. DPO and KTO get ``ref_model=None``: the
    reference is the adapter-disabled policy. SFT records go to TRL tokenised without EOS when
    ``cfg["sft_learns_eos"]`` is false (:func:`without_eos`)."""
    from datasets import Dataset

    if method not in TRAINERS:
        raise ValueError(f"unknown alignment method {method!r}; expected one of {ALIGN_METHODS}")
    settings = method_settings(cfg, method)
    if method == "sft" and not cfg.get("sft_learns_eos", True):
        records = without_eos(records, tokenizer)
        eval_records = None if eval_records is None else without_eos(eval_records, tokenizer)
        # TRL's default for prompt-completion records, which tokenised records no longer look like
        settings = {"completion_only_loss": True, **settings}
    arguments = training.trainer_arguments(settings, out_dir, seed)
    args = library_class(METHOD_CONFIGS[method])(**arguments)
    reference = {"ref_model": None} if method in ("dpo", "kto") else {}
    return trainer_class(method, args)(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(records),
        eval_dataset=None if eval_records is None else Dataset.from_list(eval_records),
        processing_class=tokenizer,
        peft_config=peft_config,
        **reference,
    )


def without_eos(records: Sequence[Mapping[str, Any]], tokenizer) -> list[dict[str, Any]]:
    """SFT records tokenised as TRL tokenises a prompt and its completion, without the EOS TRL would
    append to the completion: the model never learns to end it (the author's sft.py).

    ``completion_mask`` marks the completion's tokens, for a loss over the completion only.
    """
    tokenised = []
    for record in records:
        prompt = tokenizer(record["prompt"]).input_ids
        both = tokenizer(record["prompt"] + record["completion"]).input_ids
        mask = [0] * len(prompt) + [1] * (len(both) - len(prompt))
        tokenised.append({"input_ids": both, "completion_mask": mask})
    return tokenised


def count_over_length(
    records: Sequence[Mapping[str, Any]],
    tokenizer,
    max_length: int | None,
    max_completion_length: int | None = None,
) -> int:
    """How many records exceed ``max_length`` tokens (or a completion ``max_completion_length``; None:
    no limit, as SFT's with ``padding_free``).

    TRL truncates such examples silently; this count is logged so the loss of text is visible.
    """
    over = 0
    for record in records:
        prompt = len(tokenizer(record["prompt"]).input_ids)
        completions = [record[k] for k in ("completion", "chosen", "rejected") if k in record]
        longest = max(len(tokenizer(c, add_special_tokens=False).input_ids) for c in completions) + 1
        too_long = max_length is not None and prompt + longest > max_length
        if max_completion_length is not None:
            too_long |= longest > max_completion_length
        over += too_long
    return over


def _warn_over_length(records: Sequence[Mapping[str, Any]], tokenizer, args, split: str) -> None:
    """Log how many records the trainer's ``max_length`` (CPO: ``max_completion_length``) truncates."""
    limit = getattr(args, "max_completion_length", None)
    over = count_over_length(records, tokenizer, args.max_length, limit)
    if over:
        log.warning(
            "%d of %d %s records exceed max_length=%s%s tokens; TRL truncates them "
            "(or drops them if no completion is left)",
            over,
            len(records),
            split,
            args.max_length,
            f" or max_completion_length={limit}" if limit is not None else "",
        )


def merge_adapter(
    init_dir: str | Path, adapter_dir: str | Path, out_dir: str | Path, card: Card | None = None
) -> None:
    """Reload the initial model unquantised, merge the LoRA adapter into it and save it with the tokenizer
    (and ``card``, the adapter's model card, as the merged model's).

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
        if card is not None:
            what = f"{card.what} The LoRA adapter (`{adapter_dir}`) is merged into the initial model."
            write_card(tmp, replace(card, what=what, relation="finetune", library_name=""), out_dir)


def kept_checkpoint(trainer) -> dict[str, Any]:
    """Which step's weights the trainer ends with, for the history's metadata.

    With ``load_best_model_at_end`` the Trainer has loaded its best checkpoint (by
    ``metric_for_best_model``, ``eval_loss`` by default) after the last step; otherwise the last step's
    weights are kept. ``kept_by`` says which, ``best_metric`` is the best evaluated value.
    """
    state, args = trainer.state, trainer.args
    kept: dict[str, Any] = {
        "kept_step": state.global_step,
        "kept_by": "last step",
        "last_step": state.global_step,
        "metric_for_best_model": args.metric_for_best_model,
        "best_metric": state.best_metric,
    }
    if args.load_best_model_at_end:
        if state.best_model_checkpoint is None:
            log.warning("load_best_model_at_end: no evaluated checkpoint to load; keeping the last step")
        else:
            step = int(Path(state.best_model_checkpoint).name.removeprefix("checkpoint-"))
            kept.update(kept_step=step, kept_by=f"best {args.metric_for_best_model}")
    best = "" if state.best_metric is None else f"; best {args.metric_for_best_model} {state.best_metric:.6g}"
    log.info("keeping step %d of %d (%s%s)", kept["kept_step"], kept["last_step"], kept["kept_by"], best)
    return kept


def plot_history(history: pd.DataFrame, title: str, path: str | Path, kept_step: int | None = None) -> None:
    """Training loss, evaluation loss and reward margin by step; a dotted line marks the kept step."""
    from molmix.figures import plt

    fig, ax = plt.subplots(figsize=(5, 3))
    rows = history.dropna(subset=["loss"])
    ax.plot(rows["step"], rows["loss"], label="loss")
    if "eval_loss" in history:
        rows = history.dropna(subset=["eval_loss"])
        ax.plot(rows["step"], rows["eval_loss"], marker="o", markersize=3, label="validation loss")
    if "rewards/margins" in history:
        rows = history.dropna(subset=["rewards/margins"])
        ax.plot(rows["step"], rows["rewards/margins"], label="reward margin")
    if kept_step is not None:
        ax.axvline(kept_step, color="grey", linestyle=":", linewidth=1, label=f"kept (step {kept_step})")
    ax.set_xlabel("step")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def read_records(paths: Sequence[str], method: str, split: str, seed: int) -> list[Mapping[str, Any]]:
    """The preference pairs of ``paths`` (one split, every task) as ``method``'s records."""
    frames = [read_artifact(p, "negatives") for p in paths]
    if not frames or all(frame.empty for frame in frames):
        raise ValueError(f"no preference pairs to {split} on in {', '.join(map(str, paths)) or '(no files)'}")
    negatives = pd.concat(frames, ignore_index=True)
    records = preference_records(negatives, method)
    return kto_order(records, seed) if method == "kto" else records


def train_alignment(
    init_dir: str,
    negatives_paths: Sequence[str],
    method: str,
    cfg: Mapping[str, Any],
    seed: int,
    outputs: Mapping[str, str],
    *,
    validation_paths: Sequence[str],
) -> pd.DataFrame:
    """Align ``init_dir`` with ``method`` on the preference pairs of every task.

    ``negatives_paths``: the training split's pairs; ``validation_paths``: the validation split's, on
    which the trainer computes ``eval_loss`` (every ``eval_steps`` with ``eval_strategy: steps``) and,
    with ``load_best_model_at_end``, picks the checkpoint it keeps. ``cfg``: ``training``, ``methods``
    (with ``method``'s settings), ``lora``, ``quantization``, ``quantize_without_cuda`` and
    ``policy_dtype`` (absent: float32).
    ``outputs``: adapter (folder), model (merged folder), history (Parquet; its metadata says which
    step was kept, :func:`kept_checkpoint`), curve (PNG). Trainer checkpoints go to the adapter's work
    folder; a re-run after a kill resumes from the newest one (:func:`molmix.training.train_and_save`).
    """
    records = read_records(negatives_paths, method, "train", seed)
    eval_records = read_records(validation_paths, method, "evaluate", seed)
    log.info(
        "%s on %s: %d training records, %d validation records",
        method,
        init_dir,
        len(records),
        len(eval_records),
    )
    tokenizer = lm.load_tokenizer(init_dir)
    checkpointing = method_settings(cfg, method).get("gradient_checkpointing", False)
    model, quantized = load_policy(
        init_dir,
        cfg["quantization"],
        checkpointing,
        cfg.get("quantize_without_cuda", False),
        cfg.get("policy_dtype", "float32"),
    )

    def make_trainer():
        lora = lora_config(method_lora(cfg, method))
        trainer = trainer_for(
            method, model, tokenizer, records, cfg, seed, outputs["adapter"], lora, eval_records
        )
        _warn_over_length(records, tokenizer, trainer.args, "training")
        _warn_over_length(eval_records, tokenizer, trainer.args, "validation")
        return trainer

    def save(trainer):
        card = Card(
            what=f"`{init_dir}` aligned with {method} (§3.2.2) on the preference pairs of both directions.",
            base_models=[str(init_dir)],
            relation="adapter",
            data=[
                *(data_file(p, what="preference pairs (training)") for p in negatives_paths),
                *(data_file(p, what="preference pairs (validation: eval_loss)") for p in validation_paths),
            ],
            method=f"LoRA adapters{' on the 4-bit quantised model (QLoRA)' if quantized else ''} trained "
            f"with `{type(trainer).__name__}` ({len(records)} {method} records).",
            settings=cfg,
            seed=seed,
            results=training_results(trainer),
            library_name="peft",
            tags=[method, "lora"],
        )
        with atomic_directory(outputs["adapter"]) as tmp:
            trainer.model.save_pretrained(tmp)
            write_card(tmp, card, outputs["adapter"])  # in place of PEFT's template
        merge_adapter(init_dir, outputs["adapter"], outputs["model"], card)

    run = {
        "cfg": cfg,
        "seed": seed,
        "method": method,
        "init": str(init_dir),
        "n": len(records),
        "n_validation": len(eval_records),
    }
    trainer, _ = training.train_and_save(make_trainer, run, outputs["adapter"], save)
    kept = kept_checkpoint(trainer)
    history = pd.DataFrame(trainer.state.log_history)
    history.columns = [str(c) for c in history.columns]
    history.insert(0, "method", method)
    history["quantized"] = quantized
    write_artifact(history, outputs["history"], "training_log", params=cfg, seed=seed, extra_metadata=kept)
    plot_history(history, f"{method} from {Path(init_dir).name}", outputs["curve"], kept["kept_step"])
    return history
