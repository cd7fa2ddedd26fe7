"""Synthetic dispreferred outputs from a seq2seq model (§4.1, Fig. 1 bottom).

Paper scale: MolT5 (LPM-24 fine-tunes) generates, for every subsampled training input, the output
that becomes the rejected side of a preference pair; the gold target is the chosen side. The
subsampled validation split is made into pairs the same way: alignment's ``eval_loss`` and its best
checkpoint (Fig. 14's ``load_best_model_at_end``) are computed on them. The embedded default trains
a tiny T5 per direction briefly, so its outputs are plausible but wrong.
SMILES are used exactly as generated (the author's post-processing deleted ``#``, i.e. triple bonds;
we do not).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from molmix.generate import generate_texts, load_generator
from molmix.lm import load_tokenizer
from molmix.model_card import Card, Data
from molmix.names import MOLECULE_TASK
from molmix.prompts import build_prompt, source_and_target

log = logging.getLogger(__name__)


def train_seq2seq(
    tokenizer_dir: str | Path,
    pairs: pd.DataFrame,
    task: str,
    cfg: Mapping[str, Any],
    seed: int,
    out_dir: str | Path,
    card: Card | None = None,
) -> pd.DataFrame:
    """Train a tiny T5 from scratch on ``task``; returns the log history.

    ``cfg`` is ``models.negative``: ``architecture``, ``max_length`` (tokens of a source or target)
    and ``training`` (Seq2SeqTrainingArguments keywords). ``card``: what the caller knows of the model
    (its data); the rest of its model card is filled in here.
    """
    import torch
    from datasets import Dataset
    from transformers import (
        DataCollatorForSeq2Seq,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        T5Config,
        T5ForConditionalGeneration,
    )

    from molmix.training import save_model, train_and_save, trainer_arguments

    tokenizer = load_tokenizer(tokenizer_dir)
    torch.manual_seed(seed)
    arch, max_length = cfg["architecture"], cfg["max_length"]
    model = T5ForConditionalGeneration(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=arch["d_model"],
            d_ff=arch["d_ff"],
            d_kv=arch["d_model"] // arch["num_heads"],
            num_layers=arch["num_layers"],
            num_decoder_layers=arch["num_layers"],
            num_heads=arch["num_heads"],
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
        )
    )
    sources, targets = zip(
        *(source_and_target(task, s, c) for s, c in zip(pairs["smiles"], pairs["caption"], strict=True)),
        strict=True,
    )

    def encode(batch):
        features = tokenizer(batch["source"], truncation=True, max_length=max_length)
        labels = tokenizer(
            [t + tokenizer.eos_token for t in batch["target"]], truncation=True, max_length=max_length
        )
        features["labels"] = labels["input_ids"]
        return features

    dataset = Dataset.from_dict({"source": list(sources), "target": list(targets)})
    dataset = dataset.map(encode, batched=True, remove_columns=["source", "target"])

    card = (card or Card()).with_defaults(
        what=f"A tiny T5 trained from scratch on {task}: its outputs are the rejected side of the "
        "preference pairs (§4.1; at paper scale MolT5 plays this role).",
        data=[Data(n=len(pairs), what=f"{task} source/target pairs")],
        method="Seq2seq training from randomly initialised weights with transformers' `Seq2SeqTrainer` "
        f"(tokenizer `{tokenizer_dir}`).",
        settings=cfg,
        seed=seed,
        pipeline_tag="text2text-generation",
        tags=["negative-model"],
    )

    def make_trainer():
        return Seq2SeqTrainer(
            model=model,
            args=Seq2SeqTrainingArguments(**trainer_arguments(cfg["training"], out_dir, seed)),
            train_dataset=dataset,
            data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
            processing_class=tokenizer,
        )

    trainer, _ = train_and_save(
        make_trainer,
        {"cfg": cfg, "seed": seed, "task": task, "n": len(pairs)},
        out_dir,
        lambda trainer: save_model(trainer, tokenizer, out_dir, card),
    )
    return pd.DataFrame(trainer.state.log_history)


def same_molecule(gold: pd.Series, outputs: pd.Series) -> pd.Series:
    """Whether each output is the gold molecule, possibly written as another SMILES string."""
    from molmix.scoring.molecules import canonical_smiles, parse_smiles

    gold_canonical = canonical_smiles(parse_smiles(gold.tolist()))
    output_canonical = canonical_smiles(parse_smiles(outputs.tolist()))
    return pd.Series(
        [g is not None and g == o for g, o in zip(gold_canonical, output_canonical, strict=True)],
        index=gold.index,
    )


def preference_pairs(
    pairs: pd.DataFrame, task: str, rejected: list[str], negative_model: str
) -> tuple[pd.DataFrame, dict[str, int]]:
    """``negatives`` rows (prompt, chosen = gold, rejected = model output).

    Pairs whose rejected output is the gold target are dropped: the same string, or for Cap2Mol the
    same molecule in another SMILES form (a preference between two spellings of one answer).
    """
    sources, chosen = zip(
        *(source_and_target(task, s, c) for s, c in zip(pairs["smiles"], pairs["caption"], strict=True)),
        strict=True,
    )
    frame = pd.DataFrame(
        {
            "id": pairs["id"].tolist(),
            "task": task,
            "prompt": [build_prompt(task, s) for s in sources],
            "chosen": list(chosen),
            "rejected": rejected,
            "negative_model": negative_model,
        }
    )
    same = frame["chosen"] == frame["rejected"]
    if task == MOLECULE_TASK:
        same |= same_molecule(frame["chosen"], frame["rejected"])
    empty = frame["rejected"].str.strip() == ""
    counts = {
        "inputs": len(frame),
        "rejected_equals_chosen": int(same.sum()),
        "empty_rejected": int(empty.sum()),
    }
    if same.any():
        log.info("%s: dropped %d pairs whose rejected output equals the gold target", task, int(same.sum()))
    kept = frame[~same].reset_index(drop=True)
    counts["pairs"] = len(kept)
    return kept, counts


def generate_negatives(
    model_dir: str | Path, pairs: pd.DataFrame, task: str, cfg: Mapping[str, Any], negative_model: str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Generate the rejected outputs for every input of ``pairs`` and build the preference pairs."""
    model, tokenizer, seq2seq = load_generator(model_dir)
    sources = [
        source_and_target(task, s, c)[0] for s, c in zip(pairs["smiles"], pairs["caption"], strict=True)
    ]
    inputs = sources if seq2seq else [build_prompt(task, s) for s in sources]
    rejected, truncated, stats = generate_texts(model, tokenizer, seq2seq, inputs, cfg)
    frame, counts = preference_pairs(pairs, task, rejected, negative_model)
    return frame, {**counts, "truncated": int(sum(truncated)), **stats}


def negatives_step(
    model_dir: str,
    split_path: str,
    task: str,
    cfg: Mapping[str, Any],
    negative_model: str,
    seed: int,
    out_pairs: str,
    out_summary: str,
) -> None:
    """Preference pairs for every input of ``task`` in one subsampled split (train or validation)."""
    from molmix.artifacts import read_artifact, write_artifact, write_json

    pairs = read_artifact(split_path, "pairs")
    frame, summary = generate_negatives(model_dir, pairs, task, cfg, negative_model)
    if frame.empty:
        raise ValueError(
            f"{split_path}: no preference pairs left for {task} (all rejected outputs equal the gold)"
        )
    write_artifact(frame, out_pairs, "negatives", params=cfg, seed=seed)
    write_json(out_summary, summary)
