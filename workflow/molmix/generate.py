"""Batched generation for causal (left-padded) and seq2seq models, and the generation step.

Decoding is greedy unless ``do_sample`` (with ``temperature`` and ``top_p``, transformers' names) asks
for sampling; it stops at EOS and, for causal models, also at the template's next ``### `` section
(``stop_strings``), after which the continuation is cut there. Post-processing only trims surrounding
whitespace: characters inside a response (``#`` triple bonds, brackets, quotes) are never altered,
and decoding keeps the tokenizer's spacing (no ``clean_up_tokenization_spaces``), unless
``postprocess_smiles`` opts in to the author's edits of SMILES outputs (:func:`postprocess_smiles`).
Empty outputs and outputs that hit the token limit without stopping are kept and flagged, never dropped.

A model that cannot be *loaded* (no usable folder, custom code that needs ``trust_remote_code``, an
architecture transformers has no class for, code whose imports fail here) is recorded by
:func:`generate_step` as a system that was not run: its ``generations`` artifacts have no rows and say
why in their metadata, so scoring, tables and NLI show it as not run instead of stopping the pipeline.
Any error while generating (CUDA out of memory, a crash) still fails the job.
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

from molmix.lm import ModelError, check_model_dir
from molmix.names import MOLECULE_TASK
from molmix.prompts import SECTION_MARKER, build_prompt, extract_response, source_and_target

log = logging.getLogger(__name__)

# transformers' words (5.24) for a model it cannot build: custom code it may not run (the AutoConfig
# wording is older), or a model type / configuration it has no class for
REMOTE_CODE_MARKERS = ("trust_remote_code", "requires you to execute the configuration file")
ARCHITECTURE_MARKERS = (
    "does not recognize this architecture",
    "Unrecognized configuration class",
    "Unrecognized model",
)


class LoadFailure(ModelError):
    """A model that cannot be loaded at all, as opposed to one that fails while generating; the
    message is a one-line reason naming the folder."""


def load_failure_reason(err: BaseException, model_dir: str | Path) -> str | None:
    """The one-line reason ``err`` (raised while loading ``model_dir``) means the model cannot be
    loaded, or None when it is some other error, which must fail the job."""
    message = " ".join(str(err).split())
    if isinstance(err, ModelError):
        return message
    if isinstance(err, ImportError):  # a model's own code, or a tokenizer, needing what is not installed
        return f"{model_dir}: its code cannot be imported here ({type(err).__name__}: {message})"
    if not isinstance(err, ValueError):
        return None
    if any(marker in message for marker in REMOTE_CODE_MARKERS):
        return (
            f"{model_dir}: its model code is not part of transformers and runs only with "
            "trust_remote_code, which this configuration does not allow for it (hub.trust_remote_code)"
        )
    if any(marker in message for marker in ARCHITECTURE_MARKERS):
        first_sentence = message.split(". ")[0].rstrip(".")
        return f"{model_dir}: transformers cannot build this model ({first_sentence})"
    return None


def is_seq2seq(model_dir: str | Path) -> bool:
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return bool(config.get("is_encoder_decoder"))


def load_generator(model_dir: str | Path, *, trust_remote_code: bool = False, revision: str | None = None):
    """(model, tokenizer, seq2seq?) ready for batched generation on the available device.

    ``trust_remote_code`` and ``revision`` go to ``from_pretrained`` of both the tokenizer and the
    model; ``trust_remote_code`` is always passed, so transformers never stops to ask on a terminal.
    A model that cannot be loaded (:func:`load_failure_reason`) raises :class:`LoadFailure`; other
    errors (out of memory while moving it to the GPU, damaged weights) are raised as they are.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    loading = {"trust_remote_code": trust_remote_code, "revision": revision}
    try:
        check_model_dir(model_dir)
        seq2seq = is_seq2seq(model_dir)
        # lm.load_tokenizer's checks, with the loading settings it does not take
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), **loading)
        if tokenizer.pad_token is None:
            raise ModelError(f"{model_dir}: tokenizer has no pad token")
        tokenizer.padding_side = "right" if seq2seq else "left"
        cls = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        model = cls.from_pretrained(str(model_dir), dtype=dtype, **loading)
    except (ValueError, ImportError) as err:  # ModelError included
        reason = load_failure_reason(err, model_dir)
        if reason is None:
            raise
        raise LoadFailure(reason) from err
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    return model, tokenizer, seq2seq


SAMPLING = ("temperature", "top_p")
"""Decoding settings that apply only with ``do_sample`` (transformers' GenerationConfig names)."""


def decoding_keywords(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``generate`` keywords of the decoding settings: greedy (or beam search), or sampling with
    :data:`SAMPLING` when ``do_sample``."""
    sampling = {key: cfg[key] for key in SAMPLING if key in cfg} if cfg.get("do_sample") else {}
    return {"num_beams": cfg.get("num_beams", 1), "do_sample": bool(cfg.get("do_sample")), **sampling}


def postprocess_smiles(predictions: Sequence[str], system: str, settings: Mapping[str, Any]) -> list[str]:
    """SMILES outputs of ``system`` edited as the author's tab.py did, where ``settings`` opts in.

    ``first_token_methods``: for a system aligned with one of these methods (``<init>+<method>``), keep
    only the text before the first space; ``delete_hash``: delete every ``#`` (which also turns each
    triple bond into a single bond). Empty by default: outputs are scored as generated.
    """
    method = system.rpartition("+")[2] if "+" in system else None
    first_token = method in settings.get("first_token_methods", ())
    edited = []
    for text in predictions:
        if first_token:
            text = text.split(" ")[0]
        if settings.get("delete_hash"):
            text = text.replace("#", "")
        edited.append(text)
    return edited


def generate_texts(
    model, tokenizer, seq2seq: bool, prompts: Sequence[str], cfg: Mapping[str, Any]
) -> tuple[list[str], list[bool], dict[str, float]]:
    """Responses for ``prompts``, whether each hit ``max_new_tokens``, and throughput statistics.

    Prompts go in batches of ``cfg["batch_size"]``, in input order or, with ``cfg["length_sorted"]``,
    shortest first; the outputs are in input order either way.
    """
    import torch

    responses, truncated = [None] * len(prompts), [False] * len(prompts)
    new_tokens = 0
    start = time.perf_counter()
    batch_size = cfg["batch_size"]
    order = list(range(len(prompts)))
    if cfg.get("length_sorted"):  # batches of similar length: less padding to compute over
        lengths = [len(ids) for ids in tokenizer(list(prompts))["input_ids"]]
        order.sort(key=lambda i: lengths[i])
    for begin in tqdm(range(0, len(prompts), batch_size), desc="generate", mininterval=5):
        chosen = order[begin : begin + batch_size]
        batch = [prompts[i] for i in chosen]
        # special tokens as in training (TRL tokenizes prompts with them): BOS for Llama, EOS for T5
        encoded = tokenizer(batch, return_tensors="pt", padding=True)
        encoded = {k: v.to(model.device) for k, v in encoded.items() if k != "token_type_ids"}
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                max_new_tokens=cfg["max_new_tokens"],
                **decoding_keywords(cfg),
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **({} if seq2seq else {"stop_strings": [SECTION_MARKER], "tokenizer": tokenizer}),
            )
        generated = output if seq2seq else output[:, encoded["input_ids"].shape[1] :]
        for index, row in zip(chosen, generated, strict=True):
            tokens = row[row != tokenizer.pad_token_id]
            length = int(len(tokens))
            new_tokens += length
            text = tokenizer.decode(tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            stopped = bool((tokens == tokenizer.eos_token_id).any()) or SECTION_MARKER in text
            responses[index] = extract_response(text)
            truncated[index] = not stopped and length >= cfg["max_new_tokens"]
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
    is ``model_dir`` already loaded by :func:`load_generator`, if the caller has it. SMILES outputs
    are edited as ``cfg["postprocess_smiles"]`` asks (:func:`postprocess_smiles`; none by default).
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
    if task == MOLECULE_TASK:
        predictions = postprocess_smiles(predictions, name, cfg.get("postprocess_smiles") or {})
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
    loading: Mapping[str, Mapping[str, Any]] | None = None,
    record_load_failures: bool = False,
) -> Iterator[tuple[str, pd.DataFrame | None, dict[str, float] | LoadFailure]]:
    """(task, frame, statistics) of :func:`generate_for_pairs` for each task of one system (task ->
    model folder); consecutive tasks served by one folder load it once, one model is held at a time.

    ``loading``: task -> keywords of :func:`load_generator`. A model that cannot be loaded raises
    :class:`LoadFailure`, or with ``record_load_failures`` gives ``(task, None, the LoadFailure)``.
    """
    loaded, generator, failure = None, None, None
    for task, model_dir in model_dirs.items():
        settings = dict((loading or {}).get(task) or {})
        if (model_dir, settings) != loaded:
            generator, failure = None, None  # free the previous model before loading the next
            try:
                generator = load_generator(model_dir, **settings)
            except LoadFailure as err:
                failure = err
            loaded = (model_dir, settings)
        if failure is not None:
            if not record_load_failures:
                raise failure
            yield task, None, failure
            continue
        prefix = (input_prefixes or {}).get(task, "")
        yield task, *generate_for_pairs(model_dir, pairs, task, cfg, name, prefix, generator)


def empty_generations() -> pd.DataFrame:
    """A ``generations`` frame with no rows (a system whose model could not be loaded)."""
    columns = ("id", "task", "input", "reference", "prediction", "model")
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns}).assign(
        empty=pd.Series([], dtype=bool), truncated=pd.Series([], dtype=bool)
    )


def generate_step(
    model_dirs: Mapping[str, str],
    test_path: str,
    name: str,
    cfg: Mapping[str, Any],
    seed: int,
    outputs: Mapping[str, str],
    input_prefixes: Mapping[str, str] | None = None,
    loading: Mapping[str, Mapping[str, Any]] | None = None,
    log_path: str | None = None,
) -> None:
    """Generate each task's outputs of one system (task -> model folder, task -> output path) for the
    test set, as ``generations`` artifacts with the decoding and loading settings (``loading``: task ->
    keywords of :func:`load_generator`) and the throughput in metadata.

    A task whose model cannot be loaded gets an artifact with no rows and ``failed`` (the reason) and
    ``log`` (this job's log, ``log_path``) in its metadata: the system shows as not run downstream.
    """
    from molmix.artifacts import read_artifact, write_artifact

    test = read_artifact(test_path, "pairs")
    tasks = generate_tasks(
        {task: model_dirs[task] for task in outputs},
        test,
        cfg,
        name,
        input_prefixes,
        loading,
        record_load_failures=True,
    )
    for task, frame, stats in tasks:
        metadata = {
            "decoding": dict(cfg),
            "input_prefix": (input_prefixes or {}).get(task, ""),
            "loading": dict((loading or {}).get(task) or {}),
        }
        if frame is None:
            log.error("%s/%s: not run, its model cannot be loaded: %s", name, task, stats)
            if not isinstance(stats.__cause__, ModelError):  # transformers' own words
                log.error("%s: %s", type(stats.__cause__).__name__, stats.__cause__)
            frame, metadata = empty_generations(), {**metadata, "failed": str(stats), "log": log_path}
        else:
            log.info(
                "%s/%s: %d empty, %d truncated outputs",
                name,
                task,
                frame["empty"].sum(),
                frame["truncated"].sum(),
            )
            metadata["throughput"] = stats
        write_artifact(frame, outputs[task], "generations", params=cfg, seed=seed, extra_metadata=metadata)


def generation_failure(path: str | Path) -> dict[str, str] | None:
    """``{"failed": reason, "log": job log}`` of a generations artifact whose model could not be
    loaded, or None for one that was generated."""
    from molmix.artifacts import read_metadata

    metadata = read_metadata(path)
    return {"failed": metadata["failed"], "log": metadata.get("log")} if metadata.get("failed") else None
