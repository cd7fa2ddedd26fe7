"""A rehearsal of the paper configuration: local stand-ins for every Hub model and dataset it names.

Usage (in the repository root, or any working directory for the outputs):
    .venv/bin/python -m molmix.rehearsal [--chebi20 PATH] [--force]             # build the stand-ins
    .venv/bin/python -m molmix.rehearsal --run [--cores 2]                      # then run (make rehearsal)
``--run`` builds, then runs the workflow and its report offline (``HF_HUB_OFFLINE=1``) in the working
directory, printing each command and the wall time of each part::

    snakemake --snakefile Snakefile --configfile configs/rehearsal.yaml --workflow-profile profiles/cpu \
        --cores 2 --keep-going
    snakemake ... --report results/rehearsal-report.html

``configs/rehearsal.yaml`` is ``configs/paper.yaml`` with only model ids, dataset locations and sizes
changed (``tests/test_rehearsal.py`` compares the two key by key). Each Hub id becomes the folder
:func:`model_dir` gives it, which this module builds under ``resources/rehearsal/`` with the paper
model's architecture class and tokenizer kind, at a few hundred thousand parameters:

- Meditron-7B (the shared base) and the two Meditron7b-*-LPM24 per-task models: ``LlamaForCausalLM``
  with a ``LlamaTokenizer`` (BPE with byte fallback, trained here), one tokenizer for all three so that
  they merge. The base is briefly trained on both directions, each per-task model briefly from it on
  its own (like the L+M-24 fine-tunes of Meditron), so that they write SMILES- and caption-like text.
- the two MolT5-large negative models and TxtChem-T5: ``T5ForConditionalGeneration`` with a ``T5Tokenizer``
  (Unigram, EOS appended, 100 sentinel tokens), briefly trained by the demo's
  :func:`molmix.negatives.train_seq2seq` (a random T5 writes nothing but <pad>): each MolT5 on its
  direction, TxtChem-T5 on both with its two task prefixes. Its T5 is t5-base's kind (ReLU, tied head),
  not T5 v1.1's gated-GELU of MolT5.
- ChemLLM-7B-Chat: a causal LM whose ``config.json`` is ``model_type: internlm2`` with an ``auto_map`` into
  modeling files in the folder, as the real one: transformers loads it only with ``trust_remote_code``
  (its code subclasses transformers' Llama; the weights are the base stand-in's).
- the NLI model (DeBERTa-v3-large-mnli-fever-anli-ling-wanli): ``DebertaV2ForSequenceClassification``
  built by :func:`molmix.nli.train.build_model` with a ``DebertaV2Tokenizer`` (Unigram) and the real
  model's label order, ``id2label`` = entailment, neutral, contradiction; random weights.
- the ``llm`` decomposer (Meta-Llama-3-8B-Instruct): ``LlamaForCausalLM`` with a byte-level BPE tokenizer,
  Llama 3's special tokens and chat template, EOS ``<|eot_id|>`` and no pad token; random weights, so its
  "facts" are junk.
- SciBERT, the scorer's text tokenizer: the uncased WordPiece vocabulary molmix ships (bert-base-uncased).

The data go through ``dataset.source: lpm24`` with ``dataset.lpm24.local_dirs``: two folders laid out
like the Hub datasets LPM-24_train and LPM-24_train-extra (``data/{train,split_train,split_valid}-00000-
of-00001.parquet``, columns ``molecule`` and ``caption``), made from the ChEBI-20 validation file of the
shared fixtures (``$MOLMIX_FIXTURES`` or ``../shared/fixtures``) or, when it is absent, from the demo
molecules. A few training molecules reappear in the test pool written as other SMILES, which the
held-out test set (Appx. D: unseen molecules only) must filter out.

``resources/rehearsal/manifest.json`` records what was built from what; it is written last, and a
later call with the same inputs and settings does nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from molmix.artifacts import atomic_directory, config_hash, write_json
from molmix.data import read_chebi20, sha256_file
from molmix.demo_data import build_demo_dataset, stable_hash
from molmix.names import CAPTION_TASK, MOLECULE_TASK, TASKS
from molmix.prompts import template_parts

log = logging.getLogger(__name__)

ROOT = Path("resources/rehearsal")
"""Where the stand-ins are built, relative to the working directory (the repository root)."""
VERSION = 1
"""Bumped whenever what the builder writes changes, so a finished build is redone."""

BASE = "epfl-llm/meditron-7b"
PERTASK = {
    CAPTION_TASK: "language-plus-molecules/Meditron7b-smiles2caption-LPM24",
    MOLECULE_TASK: "language-plus-molecules/Meditron7b-caption2smiles-LPM24",
}
NEGATIVE = {
    CAPTION_TASK: "language-plus-molecules/molt5-large-smiles2caption-LPM24",
    MOLECULE_TASK: "language-plus-molecules/molt5-large-caption2smiles-LPM24",
}
TXTCHEM_T5 = "GT4SD/multitask-text-and-chemistry-t5-base-augm"
CHEMLLM = "AI4Chem/ChemLLM-7B-Chat"
NLI = "MoritzLaurer/DeBERTa-v3-large-mnli-fever-anli-ling-wanli"
DECOMPOSER = "meta-llama/Meta-Llama-3-8B-Instruct"
SCIBERT = "allenai/scibert_scivocab_uncased"
MODELS = (BASE, *PERTASK.values(), *NEGATIVE.values(), TXTCHEM_T5, CHEMLLM, NLI, DECOMPOSER, SCIBERT)
"""Every Hub model id of configs/paper.yaml, each with a stand-in."""
DATASETS = ("language-plus-molecules/LPM-24_train", "language-plus-molecules/LPM-24_train-extra")
"""The Hub datasets of dataset.source lpm24 (dataset.lpm24.train_repo, test_repo)."""

NLI_LABELS = {0: "entailment", 1: "neutral", 2: "contradiction"}
"""id2label of MoritzLaurer/DeBERTa-v3-large-mnli-fever-anli-ling-wanli (its config.json)."""

# sizes of the data (pairs per file), taken in a seeded order from the source
SIZES = {"split_train": 1200, "split_valid": 150, "test_pool": 400, "test_seen": 20}

LLAMA = {  # the Llama stand-ins' LlamaConfig sizes (Meditron-7B: 4096, 11008, 32, 32, 2048)
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 2048,
}
T5_TRAINING = {  # models.negative's settings for molmix.negatives.train_seq2seq (MolT5-large: d_model 1024, 24 layers)
    "architecture": {"d_model": 64, "d_ff": 128, "num_layers": 2, "num_heads": 4},
    "max_length": 128,
    "training": {
        "max_steps": 30,
        "per_device_train_batch_size": 8,
        "learning_rate": 0.003,
        "logging_steps": 10,
        "save_steps": 1000,
    },
}
TXTCHEM_PREFIXES = {
    CAPTION_TASK: "Caption the following SMILES: ",
    MOLECULE_TASK: "Write in SMILES the described molecule: ",
}
"""The task prefixes TxtChem-T5 was trained with (GT4SD model card; baselines.txtchem-t5.input_prefix)."""
DEBERTA = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
VOCAB = {"llama": 2000, "t5": 1000, "deberta": 1000, "chat": 2000}
# brief SFT (TRL SFTConfig) of the base on both directions, then of each per-task model on its own;
# a few dozen steps: enough to leave uniform noise for SMILES- and caption-like text, in seconds
SFT = {
    "max_steps": 60,
    "per_device_train_batch_size": 8,
    "learning_rate": 0.003,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.05,
    "max_length": 256,
    "logging_steps": 10,
    "save_steps": 1000,
}
PERTASK_STEPS = 30
TEMPLATE_WEIGHT = 50
"""Copies of the prompt templates in the Llama tokenizer's corpus, which is otherwise only SMILES and
captions: their common English words become whole tokens, as in a general-purpose tokenizer (the
template takes ~100 tokens, as with Meditron's, not ~220)."""

LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
"""Meta-Llama-3-8B-Instruct's chat template (its tokenizer_config.json)."""
LLAMA3_SPECIAL = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]


def model_dir(hub_id: str, root: str | Path = ROOT) -> str:
    """The stand-in folder of a Hub model id, as configs/rehearsal.yaml names it."""
    return f"{Path(root).as_posix()}/models/{hub_id}"


def dataset_dir(repo: str, root: str | Path = ROOT) -> str:
    """The stand-in snapshot folder of a Hub dataset (a ``dataset.lpm24.local_dirs`` value)."""
    return f"{Path(root).as_posix()}/datasets/{repo}"


def stand_ins(root: str | Path = ROOT) -> dict[str, str]:
    """Hub model id -> stand-in folder, for every model of configs/paper.yaml."""
    return {hub_id: model_dir(hub_id, root) for hub_id in MODELS}


def default_chebi20() -> Path:
    """The ChEBI-20 validation file of the shared fixtures: ``$MOLMIX_FIXTURES`` or ``../shared/fixtures``."""
    return Path(os.environ.get("MOLMIX_FIXTURES", "../shared/fixtures")) / "chebi20" / "validation.txt"


# ---------------------------------------------------------------------------------------------
# Data


def source_pairs(chebi20: Path | None, seed: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(id, smiles, caption) pairs in a seeded order, and where they came from."""
    needed = SIZES["split_train"] + SIZES["split_valid"] + SIZES["test_pool"]
    if chebi20 is not None:
        frame = read_chebi20(chebi20)[["id", "smiles", "caption"]]
        source = {"kind": "chebi20", "path": str(chebi20), "sha256": sha256_file(chebi20)}
    else:
        demo = build_demo_dataset(needed + 100, 1, 80, seed)
        frame = demo[["id", "smiles", "caption"]]
        source = {"kind": "demo", "molecules": needed + 100}
    if len(frame) < needed:
        raise ValueError(f"{source}: {len(frame)} pairs, the rehearsal needs at least {needed}")
    order = sorted(range(len(frame)), key=lambda i: stable_hash(seed, "rehearsal", frame["id"].iloc[i]))
    return frame.iloc[order].reset_index(drop=True), source


def _other_smiles(smiles: str, seed: int) -> str | None:
    """The same molecule written as another (random, seeded) SMILES, or None if RDKit cannot parse it."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    for attempt in range(10):
        (text,) = Chem.MolToRandomSmilesVect(mol, 1, randomSeed=seed + attempt)
        if text != smiles:
            return text
    return None


def lpm24_splits(pairs: pd.DataFrame, seed: int) -> dict[str, dict[str, pd.DataFrame]]:
    """{repo: {hub split: frame with molecule, caption}} in the layout of the two L+M-24 repositories.

    LPM-24_train: split_train and split_valid, and train = both (as on the Hub). LPM-24_train-extra:
    split_valid is the test pool (Appx. D), with ``test_seen`` training molecules written as other
    SMILES; split_train holds the rest.
    """
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    n_train, n_valid, n_pool = SIZES["split_train"], SIZES["split_valid"], SIZES["test_pool"]

    def frame(rows: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"molecule": rows["smiles"].tolist(), "caption": rows["caption"].tolist()})

    split_train = pairs.iloc[:n_train]
    split_valid = pairs.iloc[n_train : n_train + n_valid]
    pool = pairs.iloc[n_train + n_valid : n_train + n_valid + n_pool]
    rest = pairs.iloc[n_train + n_valid + n_pool :]
    seen = []
    for smiles, caption in zip(split_train["smiles"], split_train["caption"], strict=True):
        other = _other_smiles(smiles, seed)
        if other is not None:
            seen.append({"smiles": other, "caption": caption})
        if len(seen) == SIZES["test_seen"]:
            break
    test_pool = pd.concat([pool, pd.DataFrame(seen)], ignore_index=True)
    test_pool = test_pool.iloc[sorted(range(len(test_pool)), key=lambda i: stable_hash(seed, "pool", i))]
    train_repo, test_repo = DATASETS
    return {
        train_repo: {
            "split_train": frame(split_train),
            "split_valid": frame(split_valid),
            "train": frame(pd.concat([split_train, split_valid])),
        },
        test_repo: {
            "split_train": frame(rest),
            "split_valid": frame(test_pool),
            "train": frame(pd.concat([rest, test_pool])),
        },
    }


def write_dataset(repo: str, splits: Mapping[str, pd.DataFrame], out_dir: str | Path) -> None:
    """A snapshot folder of ``repo`` as ``snapshot_download`` writes it: data/<split>-00000-of-00001.parquet
    and a README with the dataset card's ``dataset_info``."""
    card = {
        "dataset_info": {
            "features": [{"name": "molecule", "dtype": "string"}, {"name": "caption", "dtype": "string"}],
            "splits": [{"name": name, "num_examples": len(frame)} for name, frame in splits.items()],
        },
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": name, "path": f"data/{name}-*"} for name in splits],
            }
        ],
    }
    import yaml

    with atomic_directory(out_dir) as tmp:
        (tmp / "data").mkdir()
        for name, frame in splits.items():
            frame.to_parquet(tmp / "data" / f"{name}-00000-of-00001.parquet", index=False)
        (tmp / "README.md").write_text(
            "---\n" + yaml.safe_dump(card, sort_keys=False) + "---\n"
            f"Rehearsal stand-in for the Hub dataset {repo}, written by molmix.rehearsal.\n"
        )


# ---------------------------------------------------------------------------------------------
# Tokenizers of the paper models' kinds


def _train(model, pre_tokenizer, trainer, texts: Iterable[str]):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return json.loads(tokenizer.to_str())["model"]


def llama_tokenizer(texts: Iterable[str], vocab_size: int):
    """A ``LlamaTokenizer`` (Llama 2 / Meditron kind: BPE over ``▁``-marked words with byte fallback,
    <unk> <s> </s> then the 256 byte tokens first, BOS added) trained on ``texts``, with Meditron's
    added pad token ``<PAD>``."""
    from tokenizers import models, pre_tokenizers, trainers
    from transformers import LlamaTokenizer

    special = ["<unk>", "<s>", "</s>"]
    trained = _train(
        models.BPE(unk_token="<unk>", byte_fallback=True),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False),
        trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False),
        texts,
    )
    pieces = special + [f"<0x{i:02X}>" for i in range(256)]
    pieces += [p for p, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]) if p not in pieces]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tokenizer = LlamaTokenizer(vocab={p: i for i, p in enumerate(pieces)}, merges=merges, add_bos_token=True)
    tokenizer.add_special_tokens({"pad_token": "<PAD>"})
    tokenizer.model_max_length = LLAMA["max_position_embeddings"]
    return tokenizer


def unigram_vocab(
    texts: Iterable[str], vocab_size: int, special: list[str], unk: str
) -> list[tuple[str, float]]:
    """A SentencePiece-style Unigram vocabulary (piece, log-probability), special pieces first."""
    from tokenizers import models, pre_tokenizers, trainers

    trained = _train(
        models.Unigram(),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
        trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=special, unk_token=unk, show_progress=False
        ),
        texts,
    )
    return [tuple(piece) for piece in trained["vocab"]]


def t5_tokenizer(texts: Iterable[str], vocab_size: int):
    """A ``T5Tokenizer`` (<pad>=0, </s>=1, <unk>=2, EOS appended, 100 sentinel tokens) trained on ``texts``."""
    from transformers import T5Tokenizer

    tokenizer = T5Tokenizer(vocab=unigram_vocab(texts, vocab_size, ["<pad>", "</s>", "<unk>"], "<unk>"))
    tokenizer.model_max_length = 512
    return tokenizer


def deberta_tokenizer(texts: Iterable[str], vocab_size: int):
    """A ``DebertaV2Tokenizer`` (DeBERTa-v3 kind: [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3, Unigram, [MASK] last)."""
    from transformers import DebertaV2Tokenizer

    vocab = unigram_vocab(texts, vocab_size, ["[PAD]", "[CLS]", "[SEP]", "[UNK]"], "[UNK]")
    tokenizer = DebertaV2Tokenizer(vocab=vocab, unk_id=3)
    tokenizer.add_special_tokens({"mask_token": "[MASK]"})
    tokenizer.model_max_length = 512
    return tokenizer


def llama3_tokenizer(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE tokenizer with Llama 3's special tokens and chat template, EOS ``<|eot_id|>``
    and no pad token (as Meta-Llama-3-8B-Instruct)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=LLAMA3_SPECIAL,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    bos = tokenizer.token_to_id("<|begin_of_text|>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        chat_template=LLAMA3_CHAT_TEMPLATE,
        model_max_length=8192,
    )


# ---------------------------------------------------------------------------------------------
# Models


def _save(model, tokenizer, out_dir: str | Path) -> None:
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)


def build_causal_lms(
    train: pd.DataFrame, root: Path, seed: int, work: Path, steps: int, pertask_steps: int
) -> dict[str, Any]:
    """The base (``steps`` of SFT on both directions) and the per-task models (``pertask_steps`` from it)."""
    from molmix import lm

    templates = [part for task in TASKS for part in template_parts(task)] * TEMPLATE_WEIGHT
    tokenizer_dir = work / "llama-tokenizer"
    llama_tokenizer([*lm.corpus_texts(train), *templates], VOCAB["llama"]).save_pretrained(tokenizer_dir)
    init = work / "init"
    lm.init_causal_lm(tokenizer_dir, LLAMA, seed, init)
    lm.train_sft(init, lm.sft_records(train, TASKS), {**SFT, "max_steps": steps}, seed, model_dir(BASE, root))
    pertask = {**SFT, "max_steps": pertask_steps}
    for task, hub_id in PERTASK.items():
        records = lm.sft_records(train, [task])
        lm.train_sft(model_dir(BASE, root), records, pertask, seed, model_dir(hub_id, root))
    batch = SFT["per_device_train_batch_size"]
    return {
        BASE: {
            "class": "LlamaForCausalLM",
            "tokenizer": "LlamaTokenizer",
            "weights": f"trained {steps} steps of {batch} on both directions of split_train",
        },
        **{
            hub_id: {
                "class": "LlamaForCausalLM",
                "tokenizer": "LlamaTokenizer (the base's)",
                "weights": f"the base, then {pertask_steps} steps of {batch} on {task} of split_train",
            }
            for task, hub_id in PERTASK.items()
        },
    }


INTERNLM2_FILES = {
    "configuration_internlm2.py": '''
        """Rehearsal stand-in for ChemLLM's remote code: InternLM2 is a Llama here."""
        from transformers import LlamaConfig


        class InternLM2Config(LlamaConfig):
            model_type = "internlm2"
    ''',
    "modeling_internlm2.py": '''
        """Rehearsal stand-in for ChemLLM's remote code: InternLM2 is a Llama here."""
        from transformers import LlamaForCausalLM

        from .configuration_internlm2 import InternLM2Config


        class InternLM2ForCausalLM(LlamaForCausalLM):
            config_class = InternLM2Config
    ''',
    "tokenization_internlm2.py": '''
        """Rehearsal stand-in for ChemLLM's remote code: the tokenizer is a Llama tokenizer here."""
        from transformers import LlamaTokenizer


        class InternLM2Tokenizer(LlamaTokenizer):
            pass
    ''',
}


def build_remote_code_model(base: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """ChemLLM's stand-in: the base's weights and tokenizer behind ChemLLM's remote-code declarations
    (config ``model_type: internlm2`` with ``auto_map``, tokenizer ``InternLM2Tokenizer`` with ``auto_map``)."""
    with atomic_directory(out_dir) as tmp:
        for name in os.listdir(base):
            shutil.copy2(Path(base) / name, tmp / name)
        for name, code in INTERNLM2_FILES.items():
            (tmp / name).write_text(textwrap.dedent(code).lstrip())
        config = json.loads((tmp / "config.json").read_text())
        config.update(
            model_type="internlm2",
            architectures=["InternLM2ForCausalLM"],
            auto_map={
                "AutoConfig": "configuration_internlm2.InternLM2Config",
                "AutoModel": "modeling_internlm2.InternLM2ForCausalLM",
                "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM",
            },
        )
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        tokenizer = json.loads((tmp / "tokenizer_config.json").read_text())
        tokenizer.update(
            tokenizer_class="InternLM2Tokenizer",
            auto_map={"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer", None]},
        )
        (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer, indent=2) + "\n")
    return {
        "class": "InternLM2ForCausalLM (remote code: a LlamaForCausalLM subclass)",
        "tokenizer": "InternLM2Tokenizer (remote code: a LlamaTokenizer subclass)",
        "weights": f"copied from {BASE}'s stand-in",
    }


def build_seq2seq(train: pd.DataFrame, root: Path, seed: int, work: Path, steps: int) -> dict[str, Any]:
    """The MolT5 negative models and TxtChem-T5: T5s sharing one Unigram T5 tokenizer, each trained
    ``steps`` steps by :func:`molmix.negatives.train_seq2seq` (random T5s only ever write <pad>): a MolT5 on
    its direction, TxtChem-T5 on both with the task prefixes it was trained with."""
    from molmix.negatives import train_seq2seq

    tokenizer_dir = work / "t5-tokenizer"
    t5_tokenizer([*train["smiles"], *train["caption"]], VOCAB["t5"]).save_pretrained(tokenizer_dir)
    cfg = {**T5_TRAINING, "training": {**T5_TRAINING["training"], "max_steps": steps}}
    for task, hub_id in NEGATIVE.items():
        train_seq2seq(tokenizer_dir, train, task, cfg, seed, model_dir(hub_id, root))
    # both directions as one "mol2cap" task: a Cap2Mol pair is a (prefixed caption -> SMILES) pair
    prefixed = pd.concat(
        [
            pd.DataFrame(
                {"smiles": TXTCHEM_PREFIXES[CAPTION_TASK] + train["smiles"], "caption": train["caption"]}
            ),
            pd.DataFrame(
                {"smiles": TXTCHEM_PREFIXES[MOLECULE_TASK] + train["caption"], "caption": train["smiles"]}
            ),
        ],
        ignore_index=True,
    )
    train_seq2seq(tokenizer_dir, prefixed, CAPTION_TASK, cfg, seed, model_dir(TXTCHEM_T5, root))
    batch = T5_TRAINING["training"]["per_device_train_batch_size"]
    built = {
        hub_id: {"weights": f"trained {steps} steps of {batch} on {task} of split_train"}
        for task, hub_id in NEGATIVE.items()
    }
    built[TXTCHEM_T5] = {
        "weights": f"trained {steps} steps of {batch} on both directions, with the task prefixes"
    }
    for entry in built.values():
        entry.update({"class": "T5ForConditionalGeneration", "tokenizer": "T5Tokenizer"})
    return built


def build_nli(texts: list[str], root: Path, seed: int) -> dict[str, Any]:
    """The NLI stand-in: the demo's DeBERTa-v2 classifier, with the paper model's tokenizer kind and labels."""
    from molmix.nli.train import build_model

    tokenizer = deberta_tokenizer(texts, VOCAB["deberta"])
    model = build_model(tokenizer, DEBERTA, tokenizer.model_max_length, seed)
    model.config.id2label = dict(NLI_LABELS)
    model.config.label2id = {label: index for index, label in NLI_LABELS.items()}
    _save(model, tokenizer, model_dir(NLI, root))
    order = ", ".join(NLI_LABELS[i] for i in sorted(NLI_LABELS))
    return {
        "class": "DebertaV2ForSequenceClassification",
        "tokenizer": "DebertaV2Tokenizer",
        "weights": f"random; id2label {order}",
    }


def build_chat_model(texts: list[str], root: Path, seed: int) -> dict[str, Any]:
    """The decomposer stand-in: a random Llama with a Llama 3 style tokenizer and chat template."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from molmix.nli.decompose import EXAMPLE_FACTS, EXAMPLE_TEXT, INSTRUCTION

    tokenizer = llama3_tokenizer([*texts, INSTRUCTION, EXAMPLE_TEXT, *EXAMPLE_FACTS], VOCAB["chat"])
    torch.manual_seed(seed)
    eos = [tokenizer.convert_tokens_to_ids(t) for t in ("<|end_of_text|>", "<|eot_id|>")]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        **{**LLAMA, "max_position_embeddings": tokenizer.model_max_length},
        num_key_value_heads=LLAMA["num_attention_heads"] // 2,  # grouped-query attention, as Llama 3
        rope_theta=500000.0,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos)
    _save(model, tokenizer, model_dir(DECOMPOSER, root))
    return {
        "class": "LlamaForCausalLM",
        "tokenizer": "byte-level BPE, Llama 3 special tokens and chat template, no pad token",
        "weights": "random",
    }


def build_text_tokenizer(root: Path) -> dict[str, Any]:
    """SciBERT's stand-in for the caption metrics: the uncased WordPiece tokenizer molmix ships."""
    from molmix.scoring.tokenizer import packaged_path

    source = packaged_path("bert-base-uncased")
    with atomic_directory(model_dir(SCIBERT, root)) as tmp:
        shutil.copy2(source / "tokenizer.json", tmp / "tokenizer.json")
    return {
        "class": "none (a tokenizer)",
        "tokenizer": "WordPiece, uncased",
        "weights": f"copied from {source}",
    }


# ---------------------------------------------------------------------------------------------
# Everything


def settings(
    source: Mapping[str, Any], seed: int, steps: int, pertask_steps: int, t5_steps: int
) -> dict[str, Any]:
    """What a build depends on (its manifest's ``settings``): a build with equal settings is skipped."""
    return {
        "version": VERSION,
        "seed": seed,
        "source": dict(source),
        "sizes": SIZES,
        "llama": LLAMA,
        "t5": {**T5_TRAINING, "training": {**T5_TRAINING["training"], "max_steps": t5_steps}},
        "txtchem_prefixes": TXTCHEM_PREFIXES,
        "deberta": DEBERTA,
        "vocab": VOCAB,
        "sft": {**SFT, "max_steps": steps},
        "pertask_steps": pertask_steps,
        "template_weight": TEMPLATE_WEIGHT,
    }


def build(
    root: str | Path = ROOT,
    chebi20: Path | None = None,
    seed: int = 42,
    force: bool = False,
    steps: int = SFT["max_steps"],
    pertask_steps: int = PERTASK_STEPS,
    t5_steps: int = T5_TRAINING["training"]["max_steps"],
) -> dict:
    """Build every stand-in under ``root``; return the manifest (also written to root/manifest.json).

    ``steps``, ``pertask_steps``, ``t5_steps``: training steps of the base, of each per-task model and of
    each T5 (fewer in tests).
    """
    import time

    root = Path(root)
    pairs, source = source_pairs(chebi20, seed)
    wanted = settings(source, seed, steps, pertask_steps, t5_steps)
    manifest_path = root / "manifest.json"
    if not force and manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        folders = [model_dir(m, root) for m in MODELS] + [dataset_dir(d, root) for d in DATASETS]
        if config_hash(manifest.get("settings")) == config_hash(wanted) and all(map(os.path.isdir, folders)):
            log.info("%s: up to date (built %s)", root, manifest["built"])
            return manifest
    start = time.perf_counter()
    manifest_path.unlink(missing_ok=True)
    splits = lpm24_splits(pairs, seed)
    datasets = {}
    for repo, frames in splits.items():
        write_dataset(repo, frames, dataset_dir(repo, root))
        datasets[repo] = {"path": dataset_dir(repo, root), "rows": {k: len(v) for k, v in frames.items()}}
    train_frame = splits[DATASETS[0]]["split_train"]
    train = pd.DataFrame({"smiles": train_frame["molecule"], "caption": train_frame["caption"]})
    work = root / ".work"
    shutil.rmtree(work, ignore_errors=True)
    models = build_causal_lms(train, root, seed, work, steps, pertask_steps)
    models[CHEMLLM] = build_remote_code_model(model_dir(BASE, root), model_dir(CHEMLLM, root))
    models.update(build_seq2seq(train, root, seed, work, t5_steps))
    models[NLI] = build_nli(train["caption"].tolist(), root, seed)
    models[DECOMPOSER] = build_chat_model(train["caption"].tolist(), root, seed)
    models[SCIBERT] = build_text_tokenizer(root)
    shutil.rmtree(work, ignore_errors=True)
    for hub_id, entry in models.items():
        entry["path"] = model_dir(hub_id, root)
        entry["parameters"] = _parameters(Path(entry["path"]))
    manifest = {
        "settings": wanted,
        "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.perf_counter() - start, 1),
        "datasets": datasets,
        "models": models,
    }
    write_json(manifest_path, manifest)
    log.info("built the rehearsal's stand-ins under %s in %.0f s", root, manifest["seconds"])
    return manifest


def _parameters(folder: Path) -> int:
    """Parameters stored in a folder's safetensors files (0 for a tokenizer-only folder)."""
    from safetensors import safe_open

    total = 0
    for path in folder.glob("*.safetensors"):
        with safe_open(path, "np") as handle:
            total += sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())
    return total


REPOSITORY = Path(__file__).resolve().parents[2]
"""The checkout this module belongs to (the package is installed editable): Snakefile, configs, profiles."""
REPORT = "results/rehearsal-report.html"


def workflow_commands(cores: int, repository: Path = REPOSITORY) -> list[list[str]]:
    """The two Snakemake commands of a rehearsal run in the working directory: the workflow (every job
    that can run, ``--keep-going``), then its report."""
    base = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(repository / "Snakefile"),
        "--configfile",
        str(repository / "configs" / "rehearsal.yaml"),
        "--workflow-profile",
        str(repository / "profiles" / "cpu"),
        "--cores",
        str(cores),
    ]
    return [[*base, "--keep-going"], [*base, "--report", REPORT]]


def run_workflow(cores: int) -> dict[str, float]:
    """Run :func:`workflow_commands` offline in the working directory; wall seconds of each. Raises
    :class:`subprocess.CalledProcessError` when Snakemake fails (after every job that could run)."""
    import subprocess
    import time

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    seconds = {}
    for name, command in zip(("workflow", "report"), workflow_commands(cores), strict=True):
        log.info("running: HF_HUB_OFFLINE=1 %s", " ".join(command[1:]))
        start = time.perf_counter()
        try:
            subprocess.run(command, env=env, check=True)
        finally:
            seconds[name] = round(time.perf_counter() - start, 1)
            log.info("%s: %.0f s", name, seconds[name])
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--chebi20",
        type=Path,
        help="ChEBI-20-format file the data come from (default: the shared fixtures' validation.txt, "
        "else the demo molecules)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--force", action="store_true", help="rebuild even if the build is up to date")
    parser.add_argument("--run", action="store_true", help="then run the workflow and its report")
    parser.add_argument("--cores", type=int, default=2, help="Snakemake's --cores with --run (default 2)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    chebi20 = args.chebi20
    if chebi20 is None:
        chebi20 = default_chebi20()
        if not chebi20.is_file():
            log.warning(
                "%s not found (set MOLMIX_FIXTURES): building the data from the demo molecules", chebi20
            )
            chebi20 = None
    elif not chebi20.is_file():
        parser.error(f"--chebi20 {chebi20}: no such file")
    import time

    import torch

    torch.set_num_threads(1)  # tiny models: a second thread gains little and loses much on a busy machine
    start = time.perf_counter()
    build(ROOT, chebi20, args.seed, args.force)
    log.info("stand-ins: %.0f s", time.perf_counter() - start)
    if args.run:
        import subprocess

        try:
            run_workflow(args.cores)
        except subprocess.CalledProcessError as err:
            log.error(
                "the rehearsal failed (snakemake exit status %d); see the failed jobs' logs above",
                err.returncode,
            )
            return 1
        log.info("rehearsal done in %.0f s; report: %s", time.perf_counter() - start, REPORT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
