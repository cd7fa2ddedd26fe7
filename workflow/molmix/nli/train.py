"""The embedded default's NLI model: a tiny DeBERTa-v2 cross-encoder trained on the demo's own facts.

No pretrained NLI model can be downloaded offline, so the demo trains one. Sentences are the
wordings of every fact stated in the training split (:mod:`molmix.demo_data`): the canonical
statement, its rewordings, and the atom the ``rules`` decomposer extracts from the fact's caption
clause ("The molecule carries no net charge.", "The molecule is an acyclic compound."). Labels of
a (premise, hypothesis) pair of wordings:

- entailment: both word the same fact (a wording paired with itself included);
- contradiction: two values of one exclusive slot (size, lipophilicity, charge, rings,
  aromaticity, donors, drug-likeness);
- neutral: anything else (different slots; two functional groups never exclude each other).

Every pair is assigned to training or to a held-out set by a seeded hash (identical-wording pairs
always train); training draws ``pairs_per_label`` pairs of entailment and of contradiction and
``neutral_ratio`` times as many neutral pairs: neutral pairs are by far the most numerous and
varied, and a neutral pair called entailment inflates the coverage of an unrelated caption.
The model is a ``DebertaV2ForSequenceClassification`` (no token types, like DeBERTa-v3) with a
WordPiece tokenizer trained here, id2label in the ``cross-encoder/*`` order (contradiction,
entailment, neutral), saved with ``save_pretrained`` so scoring loads it like any Hub NLI model.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molmix.artifacts import read_artifact, write_json
from molmix.demo_data import Fact, all_facts, stable_hash
from molmix.nli.decompose import decompose_rules

log = logging.getLogger(__name__)

ID2LABEL = {0: "contradiction", 1: "entailment", 2: "neutral"}
LABEL2ID = {label: index for index, label in ID2LABEL.items()}
SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}


def clause_atom(fact: Fact) -> str:
    """The atom the rules decomposer extracts from the fact's caption clause."""
    sentence = f"The molecule is {fact.clause}." if fact.is_noun else f"It {fact.clause}."
    (atom,) = decompose_rules(sentence)
    return atom


def fact_wordings(fact: Fact) -> list[str]:
    """Every sentence that states ``fact``: statement, rewordings and its rules atom."""
    return list(dict.fromkeys([fact.statement, *fact.rewordings, clause_atom(fact)]))


def relation(premise: Fact, hypothesis: Fact) -> str:
    """The gold NLI label of two facts."""
    if premise == hypothesis:
        return "entailment"
    if premise.exclusive and premise.slot == hypothesis.slot:
        return "contradiction"
    return "neutral"


def facts_in_split(raw: pd.DataFrame, source: str) -> list[Fact]:
    """The demo facts stated in a raw split's ``facts`` column (newline-separated statements)."""
    if "facts" not in raw.columns:
        raise ValueError(
            f"{source}: no 'facts' column; the demo NLI model needs the demo dataset (dataset.source demo)"
        )
    by_statement = {fact.statement: fact for fact in all_facts()}
    stated = {line for cell in raw["facts"] for line in str(cell).splitlines() if line.strip()}
    unknown = sorted(stated - by_statement.keys())
    if unknown:
        raise ValueError(f"{source}: facts not in molmix.demo_data: {unknown[:3]}")
    return [fact for statement, fact in by_statement.items() if statement in stated]


def labelled_pairs(
    facts: Sequence[Fact],
    heldout_fraction: float,
    pairs_per_label: int,
    seed: int,
    neutral_ratio: float = 1.0,
) -> dict[str, pd.DataFrame]:
    """Training and held-out (premise, hypothesis, label) frames over all wording pairs of ``facts``.

    Every ordered pair of two different wordings goes to the held-out set with probability
    ``heldout_fraction`` (a seeded hash, so the split is stable); a wording paired with itself always
    trains. The training frame has ``pairs_per_label`` pairs of each label (``neutral_ratio`` times as
    many neutral ones): every wording paired with itself, then pairs drawn at random, repeated when a
    label has fewer distinct pairs.
    """
    wordings = [(fact, text) for fact in facts for text in fact_wordings(fact)]
    rows: dict[str, dict[str, list]] = {
        split: {label: [] for label in LABEL2ID} for split in ("train", "heldout")
    }
    for (fp, premise), (fh, hypothesis) in itertools.product(wordings, repeat=2):
        draw = stable_hash(seed, "nli-pair", premise, hypothesis) % 10_000
        heldout = premise != hypothesis and draw < heldout_fraction * 10_000
        rows["heldout" if heldout else "train"][relation(fp, fh)].append((premise, hypothesis))
    rng = random.Random(seed)
    frames = {}
    for split, by_label in rows.items():
        chosen = []
        for label, pairs in by_label.items():
            if split == "train":
                wanted = round(pairs_per_label * (neutral_ratio if label == "neutral" else 1))
                same = [pair for pair in pairs if pair[0] == pair[1]]
                rest = [pair for pair in pairs if pair[0] != pair[1]]
                picked = same + rng.sample(rest, min(len(rest), max(0, wanted - len(same))))
                picked += rng.choices(picked, k=max(0, wanted - len(picked)))
            else:
                picked = pairs
            chosen += [(premise, hypothesis, label) for premise, hypothesis in picked]
        rng.shuffle(chosen)
        frames[split] = pd.DataFrame(chosen, columns=["premise", "hypothesis", "label"])
    return frames


def train_tokenizer(texts: Sequence[str], vocab_size: int):
    """A lower-casing WordPiece tokenizer with BERT-style [CLS] A [SEP] B [SEP] pair encoding.

    Its vocabulary is chosen here, not by tokenizers' ``WordPieceTrainer``, whose merge ties follow a
    randomly seeded hash map (four runs on the demo's sentences gave four vocabularies, of 375 to 377
    tokens, and NLI models of different quality): the special tokens, every character alone and as a
    ``##`` continuation (so any word of these characters can be tokenised), then whole words by
    frequency, ties by spelling, up to ``vocab_size``.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = Counter(
        word for text in texts for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
    )
    characters = sorted({character for word in words for character in word})
    vocabulary = [*SPECIAL_TOKENS.values(), *characters, *(f"##{c}" for c in characters)]
    by_frequency = sorted((word for word in words if len(word) > 1), key=lambda word: (-words[word], word))
    vocabulary += by_frequency[: max(0, vocab_size - len(vocabulary))]
    tokenizer = Tokenizer(
        models.WordPiece(
            {token: i for i, token in enumerate(vocabulary)}, unk_token=SPECIAL_TOKENS["unk_token"]
        )
    )
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.WordPiece()
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_input_names=["input_ids", "attention_mask"], **SPECIAL_TOKENS
    )


def build_model(tokenizer, architecture: Mapping[str, Any], max_length: int, seed: int):
    import torch
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    torch.manual_seed(seed)
    config = DebertaV2Config(
        vocab_size=len(tokenizer),
        hidden_size=architecture["hidden_size"],
        intermediate_size=architecture["intermediate_size"],
        num_hidden_layers=architecture["num_hidden_layers"],
        num_attention_heads=architecture["num_attention_heads"],
        max_position_embeddings=max_length,
        type_vocab_size=0,
        relative_attention=True,
        position_buckets=32,
        max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        hidden_dropout_prob=0.0,  # a small closed set of sentences: memorisation is the task
        attention_probs_dropout_prob=0.0,
        pooler_dropout=0.0,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=len(ID2LABEL),
        id2label=ID2LABEL,
        label2id=LABEL2ID,
    )
    return DebertaV2ForSequenceClassification(config)


def evaluate(model_dir: str | Path, pairs: pd.DataFrame, batch_size: int = 128) -> dict[str, Any]:
    """Accuracy, per-class recall and the confusion matrix of a saved NLI model on labelled pairs."""
    from molmix.nli.model import LABELS, NLIModel

    model = NLIModel(model_dir, batch_size=batch_size)
    predicted = np.asarray(LABELS)[
        model.predict(list(zip(pairs["premise"], pairs["hypothesis"], strict=True))).argmax(axis=1)
    ]
    gold = pairs["label"].to_numpy()
    confusion = pd.crosstab(pd.Series(gold, name="gold"), pd.Series(predicted, name="predicted"))
    return {
        "n": len(pairs),
        "accuracy": float((predicted == gold).mean()),
        "balanced_accuracy": float(
            np.mean([(predicted[gold == label] == label).mean() for label in set(gold)])
        ),
        "recall": {
            label: float((predicted[gold == label] == label).mean())
            for label in LABELS
            if (gold == label).any()
        },
        "confusion": {g: {p: int(confusion.loc[g].get(p, 0)) for p in LABELS} for g in confusion.index},
    }


def caption_checks(test_raw: str | Path, model_dir: str | Path, every: int = 5) -> dict[str, float]:
    """Atomic NLI of held-out captions (every ``every``-th of the test split) against themselves and
    against the test caption sharing the fewest facts with each (exclusive slots make some overlap
    common), with that overlap: coverage should track it."""
    from molmix.nli.atomic import PairScorer, score_units, summarize
    from molmix.nli.model import NLIModel

    test = read_artifact(test_raw, "pairs")
    facts = [set(cell.splitlines()) for cell in test["facts"]]
    chosen = range(0, len(test), every)
    unrelated, overlap = [], []
    for i in chosen:
        j = min((j for j in range(len(test)) if j != i), key=lambda j: len(facts[i] & facts[j]))
        unrelated.append(test["caption"][j])
        overlap.append(len(facts[i] & facts[j]) / len(facts[i]))
    scorer = PairScorer(NLIModel(model_dir, batch_size=256))
    atoms = [decompose_rules(test["caption"][i]) for i in chosen]
    itself = summarize(score_units(atoms, atoms, scorer))
    other = score_units(atoms, [decompose_rules(caption) for caption in unrelated], scorer)
    return {
        "n": len(atoms),
        "self_coverage": itself["coverage"],
        "self_hallucination": itself["hallucination"],
        "unrelated_coverage": summarize(other)["coverage"],
        "unrelated_fact_overlap": float(np.mean(overlap)),
        "unrelated_coverage_error": float(np.abs(other["coverage"].to_numpy() - np.array(overlap)).mean()),
    }


def train_nli_model(
    train_raw: str | Path,
    cfg: Mapping[str, Any],
    seed: int,
    out_dir: str | Path,
    metrics_path: str | Path,
    test_raw: str | Path | None = None,
) -> dict[str, Any]:
    """Train the demo NLI model from the raw train split's facts; write it and its held-out metrics
    (pairs held out of training and, given ``test_raw``, :func:`caption_checks` on test captions).

    ``cfg`` is ``nli.model.training``: the data and model settings, and ``arguments`` (TrainingArguments
    keywords). Checkpoints go to the work folder of ``out_dir``; a re-run after a kill resumes from
    the newest one (:func:`molmix.training.train_and_save`).
    """
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from molmix.training import save_model, train_and_save, trainer_arguments

    raw = read_artifact(train_raw, "pairs")
    facts = facts_in_split(raw, str(train_raw))
    pairs = labelled_pairs(facts, cfg["heldout_fraction"], cfg["pairs_per_label"], seed, cfg["neutral_ratio"])
    log.info(
        "demo NLI pairs from %d facts: train %s, held-out %s",
        len(facts),
        pairs["train"]["label"].value_counts().to_dict(),
        pairs["heldout"]["label"].value_counts().to_dict(),
    )
    sentences = sorted({s for frame in pairs.values() for s in (*frame["premise"], *frame["hypothesis"])})
    tokenizer = train_tokenizer(sentences, cfg["vocab_size"])
    model = build_model(tokenizer, cfg["architecture"], cfg["max_length"], seed)

    encoded = tokenizer(
        list(pairs["train"]["premise"]),
        list(pairs["train"]["hypothesis"]),
        truncation=True,
        max_length=cfg["max_length"],
    )
    labels = [LABEL2ID[label] for label in pairs["train"]["label"]]
    dataset = [
        {"input_ids": ids, "attention_mask": mask, "labels": label}
        for ids, mask, label in zip(encoded["input_ids"], encoded["attention_mask"], labels, strict=True)
    ]

    def make_trainer():
        args = TrainingArguments(**trainer_arguments(cfg["arguments"], out_dir, seed, disable_tqdm=True))
        return Trainer(
            model=model, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer)
        )

    settings = {"cfg": cfg, "seed": seed, "train": pairs["train"].to_dict("records")}
    _, result = train_and_save(make_trainer, settings, out_dir, lambda t: save_model(t, tokenizer, out_dir))
    metrics = {
        "facts": len(facts),
        "train_pairs": len(pairs["train"]),
        "train_loss": float(result.training_loss),
        "heldout": evaluate(out_dir, pairs["heldout"]),
        "label_order": [ID2LABEL[i] for i in sorted(ID2LABEL)],
    }
    log.info(
        "demo NLI model: held-out accuracy %.3f on %d pairs",
        metrics["heldout"]["accuracy"],
        metrics["heldout"]["n"],
    )
    if test_raw is not None:
        metrics["captions"] = caption_checks(test_raw, out_dir)
        log.info("held-out captions: %s", metrics["captions"])
    write_json(metrics_path, metrics)
    return metrics
