"""Causal language models: loading, the embedded bootstrap (tokenizer, tiny Llama) and supervised training.

At paper scale the per-task models are Meditron-7B checkpoints loaded with ``from_pretrained``; the
embedded default builds the same kind of model offline: a BPE tokenizer trained on the demo corpus,
a tiny ``LlamaConfig`` model, a short multi-task training of that shared base on both directions
(it plays Meditron's role) and per-task SFT from it. Training uses TRL's ``SFTTrainer`` with
prompt/completion data, so the loss covers the completion only and an EOS is appended and learned.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from molmix.artifacts import DOWNLOAD_RECORD, atomic_directory, write_json
from molmix.model_card import Card, Data, write_card
from molmix.names import TASKS
from molmix.prompts import prompt_completion, template_parts

log = logging.getLogger(__name__)

SMILES_SYNTAX = r"[()\[\]=#%@+\-\\/.:0-9]"
SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
COMMIT = re.compile(r"[0-9a-f]{40}")


class ModelError(ValueError):
    """A model path or id that cannot be used; the message names it."""


def check_model_dir(path: str | Path, *, need_tokenizer: bool = True) -> Path:
    """A local model folder with a config (and tokenizer), or a clear error naming it."""
    path = Path(path)
    if not (path / "config.json").exists():
        raise ModelError(f"{path}: not a model folder (no config.json)")
    if need_tokenizer and not any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
        raise ModelError(f"{path}: model folder has no tokenizer (tokenizer.json / tokenizer_config.json)")
    return path


def download_model(repo_id: str, out_dir: str | Path, revision: str | None = None) -> dict[str, Any]:
    """Snapshot a Hub model into ``out_dir`` so GPU jobs can run with ``HF_HUB_OFFLINE=1``.

    Every file of the repository at ``revision`` (a pinned commit; ``None`` = main) is fetched, the
    Python files of a remote-code model included. The token is the one huggingface_hub resolves
    (``HF_TOKEN``, else the file ``hf auth login`` writes): non-gated models need none, and a gated
    model without access is an error naming the model and the login command. The folder gets a
    ``molmix-download.json`` record (repository, revision asked for, commit fetched), returned too.
    """
    from huggingface_hub import __version__ as hub_version
    from huggingface_hub import get_token, snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RevisionNotFoundError

    try:
        with atomic_directory(out_dir) as tmp:
            snapshot_download(repo_id, revision=revision, local_dir=tmp)
            record = {
                "repo_id": repo_id,
                "revision": revision,
                # huggingface_hub's own record; a pinned commit is what it fetched when it recorded none
                "commit": fetched_commit(tmp)
                or (revision if revision and COMMIT.fullmatch(revision) else None),
                "huggingface_hub": hub_version,
            }
            write_json(tmp / DOWNLOAD_RECORD, record)
    except RevisionNotFoundError:
        raise ModelError(
            f"model {repo_id!r}: revision {revision!r} (hub.revisions) does not exist on the Hugging Face Hub"
        ) from None
    except HfHubHTTPError as err:
        status = err.response.status_code if getattr(err, "response", None) is not None else None
        if not isinstance(err, GatedRepoError) and status not in (401, 403):
            raise _hub_failure(repo_id, err) from None
        page = f"https://huggingface.co/{repo_id}"
        what = "is gated" if isinstance(err, GatedRepoError) else "is gated or private (or the id is wrong)"
        if get_token() is None:
            raise ModelError(
                f"model {repo_id!r} {what} on the Hugging Face Hub and no token was found: accept its "
                f"licence on {page}, then log in with `hf auth login` (or set HF_TOKEN)"
            ) from None
        raise ModelError(
            f"model {repo_id!r} {what} on the Hugging Face Hub and your token has no access "
            f"({type(err).__name__}): accept its licence on {page} with that account, or `hf auth login` "
            "with one that has access"
        ) from None
    except ModelError:
        raise
    except Exception as err:  # network, disk, missing repository
        raise _hub_failure(repo_id, err) from None
    check_model_dir(out_dir, need_tokenizer=False)
    log.info("%s: commit %s -> %s", repo_id, record["commit"], out_dir)
    return record


def _hub_failure(repo_id: str, err: Exception) -> ModelError:
    return ModelError(
        f"model {repo_id!r} needs the Hugging Face Hub, which failed ({type(err).__name__}: {err}); "
        "download it elsewhere and put the local folder path in the config instead of the id"
    )


def fetched_commit(local_dir: str | Path) -> str | None:
    """The commit a ``snapshot_download(local_dir=...)`` fetched, from huggingface_hub's metadata under
    ``local_dir/.cache/huggingface`` (the tree listing ``trees/<commit>.json``, else the per-file download
    records, whose first line is the commit); ``None`` if no single commit is recorded."""
    meta = Path(local_dir) / ".cache" / "huggingface"
    commits = {p.stem for p in (meta / "trees").glob("*.json") if COMMIT.fullmatch(p.stem)}
    if not commits:
        for record in (meta / "download").rglob("*.metadata"):
            with open(record, encoding="utf-8") as fh:
                first = fh.readline().strip()
            if COMMIT.fullmatch(first):
                commits.add(first)
    return commits.pop() if len(commits) == 1 else None


def load_tokenizer(path: str | Path, padding_side: str = "right"):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:
        raise ModelError(f"{path}: tokenizer has no pad token")
    tokenizer.padding_side = padding_side
    return tokenizer


def load_causal_lm(path: str | Path, dtype: str = "float32"):
    """A causal LM from a local folder (as written by ``save_pretrained`` or a Hub snapshot)."""
    import torch
    from transformers import AutoModelForCausalLM

    check_model_dir(path)
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype))


def corpus_texts(pairs: pd.DataFrame) -> Iterable[str]:
    """Every text the models will see besides the prompt templates: the SMILES and captions."""
    for smiles, caption in zip(pairs["smiles"], pairs["caption"], strict=True):
        yield smiles
        yield caption


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | Path) -> None:
    """A BPE tokenizer saved as a Hugging Face fast tokenizer with pad/bos/eos/unk.

    The pre-tokenizer splits after each whitespace character (``merged_with_previous``) and isolates
    SMILES syntax (branches, ring-closure digits, bond symbols such as ``:``, brackets): BPE then merges
    only runs of atoms (with whole SMILES chunks as tokens a tiny model produced valid SMILES for under
    a third of test captions). Each fixed part of the two prompt templates (before and after the
    source) is one added token: they were ~105 of a prompt's ~135 tokens, carrying nothing but the
    task, so sequences are 2.5x shorter and the tiny models train about twice as fast on the same text
    (``decode(encode(prompt)) == prompt``). Added tokens are split off before pre-tokenisation, so no
    token spans the end of the prompt and the start of the completion: the tokenised prompt is always
    a prefix of the tokenised prompt + completion, which completion-only loss needs.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\s"), behavior="merged_with_previous"),
            pre_tokenizers.Split(Regex(SMILES_SYNTAX), behavior="isolated"),
        ]
    )
    tokenizer.decoder = decoders.Fuse()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=list(string.printable),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)
    fast.add_tokens([AddedToken(part, normalized=False) for task in TASKS for part in template_parts(task)])
    with atomic_directory(out_dir) as tmp:
        fast.save_pretrained(tmp)
    log.info("tokenizer: %d tokens -> %s", len(fast), out_dir)


def init_causal_lm(
    tokenizer_dir: str | Path, architecture: Mapping[str, Any], seed: int, out_dir: str | Path
):
    """A randomly initialised tiny Llama with the tokenizer's vocabulary, saved as safetensors."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer(tokenizer_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=architecture["hidden_size"],
        intermediate_size=architecture["intermediate_size"],
        num_hidden_layers=architecture["num_hidden_layers"],
        num_attention_heads=architecture["num_attention_heads"],
        num_key_value_heads=architecture["num_attention_heads"],
        max_position_embeddings=architecture["max_position_embeddings"],
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    log.info("base model: %.2fM parameters", model.num_parameters() / 1e6)
    card = Card(
        what="A randomly initialised tiny Llama: the embedded default's base model before pretraining "
        "(it plays the role of Meditron-7B).",
        method=f"`LlamaForCausalLM` with random weights ({model.num_parameters()} parameters) and the "
        f"vocabulary of the tokenizer `{tokenizer_dir}`; not trained.",
        settings=architecture,
        seed=seed,
    )
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_card(tmp, card, out_dir)


def sft_records(pairs: pd.DataFrame, tasks: Sequence[str]) -> list[dict[str, str]]:
    """Prompt/completion records of ``pairs`` for each task in ``tasks``."""
    records = []
    for task in tasks:
        for smiles, caption in zip(pairs["smiles"], pairs["caption"], strict=True):
            prompt, completion = prompt_completion(task, smiles, caption)
            records.append({"prompt": prompt, "completion": completion})
    return records


def train_sft(
    model_dir: str | Path,
    records: list[dict[str, str]],
    cfg: Mapping[str, Any],
    seed: int,
    out_dir: str | Path,
    card: Card | None = None,
) -> pd.DataFrame:
    """Full-parameter SFT of ``model_dir`` on prompt/completion ``records``; returns the log history.

    ``cfg``: SFTConfig keywords (``models.base.pretrain``, ``models.pertask.training``). A re-run after
    a kill resumes from the last checkpoint (:func:`molmix.training.train_and_save`). ``card``: what the
    caller knows of the model (what it is, its data); the rest of its model card is filled in here.
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from molmix.training import save_model, train_and_save, trainer_arguments

    tokenizer = load_tokenizer(model_dir)
    card = (card or Card(what="A causal LM fine-tuned with SFT.")).with_defaults(
        base_models=[str(model_dir)],
        relation="finetune",
        data=[Data(n=len(records), what="prompt/completion records")],
        method="Supervised fine-tuning of every parameter with TRL's `SFTTrainer` on prompt/completion "
        "records: the loss covers the completion (and its EOS) only (Eq. 2).",
        settings=cfg,
        seed=seed,
    )

    def make_trainer():
        args = SFTConfig(**trainer_arguments(cfg, out_dir, seed, completion_only_loss=True))
        return SFTTrainer(
            model=load_causal_lm(model_dir),
            args=args,
            train_dataset=Dataset.from_list(records),
            processing_class=tokenizer,
        )

    trainer, _ = train_and_save(
        make_trainer,
        {"cfg": cfg, "seed": seed, "data": records},
        out_dir,
        lambda trainer: save_model(trainer, tokenizer, out_dir, card),
    )
    return pd.DataFrame(trainer.state.log_history)
