"""Batched generation for causal (left-padded) and seq2seq models, and the generation step.

Decoding stops at EOS and, for causal models, also at the template's next ``### `` section
(``stop_strings``), after which the continuation is cut there. Post-processing only trims surrounding
whitespace: characters inside a response (``#`` triple bonds, brackets, quotes) are never altered,
and decoding keeps the tokenizer's spacing (no ``clean_up_tokenization_spaces``). Empty outputs and
outputs that hit the token limit without stopping are kept and flagged, never dropped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from molmix.prompts import SECTION_MARKER, build_prompt, extract_response, source_and_target

log = logging.getLogger(__name__)


def is_seq2seq(model_dir: str | Path) -> bool:
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return bool(config.get("is_encoder_decoder"))


def load_generator(model_dir: str | Path):
    """(model, tokenizer, seq2seq?) ready for batched generation on the available device."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    from molmix.lm import check_model_dir, load_tokenizer

    check_model_dir(model_dir)
    seq2seq = is_seq2seq(model_dir)
    tokenizer = load_tokenizer(model_dir, padding_side="right" if seq2seq else "left")
    cls = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = cls.from_pretrained(str(model_dir), dtype=dtype)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    return model, tokenizer, seq2seq


def generate_texts(
    model, tokenizer, seq2seq: bool, prompts: Sequence[str], cfg: Mapping[str, Any]
) -> tuple[list[str], list[bool], dict[str, float]]:
    """Responses for ``prompts``, whether each hit ``max_new_tokens``, and throughput statistics."""
    import torch

    responses, truncated = [], []
    new_tokens = 0
    start = time.perf_counter()
    batch_size = cfg["batch_size"]
    for begin in tqdm(range(0, len(prompts), batch_size), desc="generate", mininterval=5):
        batch = list(prompts[begin : begin + batch_size])
        # special tokens as in training (TRL tokenizes prompts with them): BOS for Llama, EOS for T5
        encoded = tokenizer(batch, return_tensors="pt", padding=True)
        encoded = {k: v.to(model.device) for k, v in encoded.items() if k != "token_type_ids"}
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                max_new_tokens=cfg["max_new_tokens"],
                num_beams=cfg.get("num_beams", 1),
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **({} if seq2seq else {"stop_strings": [SECTION_MARKER], "tokenizer": tokenizer}),
            )
        generated = output if seq2seq else output[:, encoded["input_ids"].shape[1] :]
        for row in generated:
            tokens = row[row != tokenizer.pad_token_id]
            length = int(len(tokens))
            new_tokens += length
            text = tokenizer.decode(tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            stopped = bool((tokens == tokenizer.eos_token_id).any()) or SECTION_MARKER in text
            responses.append(extract_response(text))
            truncated.append(not stopped and length >= cfg["max_new_tokens"])
    seconds = time.perf_counter() - start
    stats = {
        "seconds": seconds,
        "new_tokens": new_tokens,
        "tokens_per_second": new_tokens / max(seconds, 1e-9),
    }
    log.info(
        "generated %d outputs, %d tokens, %.0f tokens/s",
        len(responses),
        new_tokens,
        stats["tokens_per_second"],
    )
    return responses, truncated, stats


def generate_for_pairs(
    model_dir: str | Path,
    pairs: pd.DataFrame,
    task: str,
    cfg: Mapping[str, Any],
    name: str,
    input_prefix: str = "",
    generator=None,
):
    """A ``generations`` frame for ``task`` on every pair, plus throughput statistics.

    Seq2seq models (MolT5, TxtChem-T5) read ``input_prefix`` + the raw input; causal models the
    instruction prompt of Appx. F. The ``input`` column is the raw input either way. ``generator``
    is ``model_dir`` already loaded by :func:`load_generator`, if the caller has it.
    """
    model, tokenizer, seq2seq = generator or load_generator(model_dir)
    if input_prefix and not seq2seq:
        raise ValueError(
            f"{model_dir}: input_prefix {input_prefix!r} is for seq2seq models; causal ones get the prompt"
        )
    sources, references = zip(
        *(source_and_target(task, s, c) for s, c in zip(pairs["smiles"], pairs["caption"], strict=True)),
        strict=True,
    )
    prompts = [input_prefix + s for s in sources] if seq2seq else [build_prompt(task, s) for s in sources]
    predictions, truncated, stats = generate_texts(model, tokenizer, seq2seq, prompts, cfg)
    frame = pd.DataFrame(
        {
            "id": pairs["id"].tolist(),
            "task": task,
            "input": list(sources),
            "reference": list(references),
            "prediction": predictions,
            "model": name,
            "empty": [not p for p in predictions],
            "truncated": truncated,
        }
    )
    return frame, stats


def generate_tasks(
    model_dirs: Mapping[str, str | Path],
    pairs: pd.DataFrame,
    cfg: Mapping[str, Any],
    name: str,
    input_prefixes: Mapping[str, str] | None = None,
) -> Iterator[tuple[str, pd.DataFrame, dict[str, float]]]:
    """(task, frame, statistics) of :func:`generate_for_pairs` for each task of one system (task ->
    model folder); consecutive tasks served by one folder load it once, one model is held at a time."""
    loaded, generator = None, None
    for task, model_dir in model_dirs.items():
        if model_dir != loaded:
            generator = None  # free the previous model before loading the next
            generator, loaded = load_generator(model_dir), model_dir
        prefix = (input_prefixes or {}).get(task, "")
        yield task, *generate_for_pairs(model_dir, pairs, task, cfg, name, prefix, generator)


def generate_step(
    model_dirs: Mapping[str, str],
    test_path: str,
    name: str,
    cfg: Mapping[str, Any],
    seed: int,
    outputs: Mapping[str, str],
    input_prefixes: Mapping[str, str] | None = None,
) -> None:
    """Generate each task's outputs of one system (task -> model folder, task -> output path) for the
    test set, as ``generations`` artifacts with the decoding settings and throughput in metadata."""
    from molmix.artifacts import read_artifact, write_artifact

    test = read_artifact(test_path, "pairs")
    tasks = generate_tasks({task: model_dirs[task] for task in outputs}, test, cfg, name, input_prefixes)
    for task, frame, stats in tasks:
        log.info(
            "%s/%s: %d empty, %d truncated outputs",
            name,
            task,
            frame["empty"].sum(),
            frame["truncated"].sum(),
        )
        write_artifact(
            frame,
            outputs[task],
            "generations",
            params=cfg,
            seed=seed,
            extra_metadata={
                "decoding": dict(cfg),
                "input_prefix": (input_prefixes or {}).get(task, ""),
                "throughput": stats,
            },
        )
