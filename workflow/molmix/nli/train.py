"""The embedded default's NLI model: a tiny DeBERTa-v2 cross-encoder trained on the demo's own facts.

No pretrained NLI model can be downloaded offline, so the demo trains one on fact pairs
(:func:`labelled_pairs`): the sentences are the wordings of every fact stated in the training split
(:mod:`molmix.demo_data`): the canonical statement, its rewordings, and the atom the ``rules``
decomposer extracts from the fact's caption clause ("The molecule carries no net charge.", "The
molecule is an acyclic compound."). This is what atomic-level NLI asks of the model.

It is then trained further on text pairs (:func:`text_pairs`), what the full-text and sentence-level
baselines ask of it: whole captions and their sentences, each stating several facts. Premise and
hypothesis are a molecule's facts and a rewording of them, a part of them, them with one exclusive
value changed or a group added, or another molecule's, verbalised through the demo's caption templates
(and a sentence of it, sometimes), and every molecule's caption, and a sentence of one, paired with
itself (:func:`self_pairs`). This second stage trains on the text pairs together with some of
the fact pairs again, from the fact-trained weights: trained on both kinds from random weights, the
model learnt neither (loss 1.01 after 20 epochs, every pair called neutral). It is evaluated on text
pairs of held-out molecules (``heldout_texts``) and on held-out captions (:func:`caption_checks`); the
runs behind the settings are in CHANGELOG.md.

A pair's label follows from the facts each side states (:func:`relation`):

- contradiction: the two sides give different values of one exclusive slot (size, lipophilicity,
  charge, rings, aromaticity, donors, drug-likeness);
- entailment: otherwise, when the premise states every fact of the hypothesis (a wording paired with
  itself included);
- neutral: anything else (two functional groups never exclude each other).

Every fact pair is assigned to training or to a held-out set by a seeded hash (identical-wording pairs
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
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molmix.artifacts import read_artifact, write_json
from molmix.demo_data import EXCLUSIVE, Fact, all_facts, caption, exclusive_fact, stable_hash
from molmix.names import NLI_METHODS
from molmix.nli.decompose import decompose_rules

log = logging.getLogger(__name__)

HELDOUT_TEXT_PAIRS = 100
"""Held-out text pairs of each label the trained model is evaluated on (``heldout_texts``)."""

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


def facts_by_wording() -> dict[str, Fact]:
    """Every demo fact under each of its wordings (:func:`fact_wordings`), for :func:`text_facts`."""
    return {wording: fact for fact in all_facts() for wording in fact_wordings(fact)}


def relation(premise: Collection[Fact], hypothesis: Collection[Fact]) -> str:
    """The gold NLI label of two texts from the facts each states (one fact each for an atom)."""
    stated = {fact.slot: fact for fact in premise if fact.exclusive}
    if any(fact.exclusive and stated.get(fact.slot, fact) != fact for fact in hypothesis):
        return "contradiction"
    return "entailment" if set(hypothesis) <= set(premise) else "neutral"


def text_facts(text: str, by_wording: Mapping[str, Fact]) -> frozenset[Fact]:
    """The demo facts a caption, or a sentence of one, states (through the rules decomposer)."""
    return frozenset(by_wording[atom] for atom in decompose_rules(text))


def molecules_in_split(raw: pd.DataFrame, source: str) -> list[list[Fact]]:
    """The facts of each molecule of a raw split (its ``facts`` column, one statement per line)."""
    facts_in_split(raw, source)  # checks the column and every statement
    by_statement = {fact.statement: fact for fact in all_facts()}
    return [[by_statement[line] for line in str(cell).splitlines() if line.strip()] for cell in raw["facts"]]


def _variant(facts: list[Fact], molecules: Sequence[list[Fact]], rng: random.Random) -> list[Fact]:
    """Facts for the other side of a text pair: the same ones, a part, one exclusive value changed, a
    group added, or another molecule's."""
    kind = rng.randrange(5)
    if kind == 1:
        nouns = [fact for fact in facts if fact.is_noun]
        part = rng.sample(facts, rng.randint(1, len(facts)))
        return part if any(fact.is_noun for fact in part) else [rng.choice(nouns), *part]
    if kind == 2:
        changed = rng.choice([fact for fact in facts if fact.exclusive])
        value = rng.choice(sorted(set(EXCLUSIVE[changed.slot]) - {changed.value}))
        return [exclusive_fact(changed.slot, value) if fact == changed else fact for fact in facts]
    if kind == 3:
        absent = [fact for fact in all_facts() if not fact.exclusive and fact not in facts]
        return facts + rng.sample(absent, min(len(absent), rng.randint(1, 2)))
    if kind == 4:
        return list(rng.choice(molecules))
    return facts


def text_pairs(molecules: Sequence[list[Fact]], pairs_per_label: int, seed: int) -> pd.DataFrame:
    """Up to ``pairs_per_label`` distinct (premise, hypothesis, label) pairs of each label whose sides are
    whole captions or sentences of them (module docstring); a sixth of the draws pair a text with itself."""
    from molmix.nli.baselines import sentence_units

    rng = random.Random(seed)
    by_wording = facts_by_wording()
    chosen: dict[str, dict[tuple[str, str], None]] = {label: {} for label in LABEL2ID}
    for _ in range(50 * pairs_per_label):
        if min(map(len, chosen.values())) >= pairs_per_label:
            break
        facts = list(rng.choice(molecules))
        sides = [caption(facts, rng), caption(_variant(facts, molecules, rng), rng)]
        rng.shuffle(sides)
        premise, hypothesis = (
            rng.choice(sentence_units(text)) if rng.random() < 0.4 else text for text in sides
        )
        if rng.randrange(6) == 0:
            premise = hypothesis
        label = relation(text_facts(premise, by_wording), text_facts(hypothesis, by_wording))
        if len(chosen[label]) < pairs_per_label:
            chosen[label][(premise, hypothesis)] = None
    rows = [(premise, hypothesis, label) for label, pairs in chosen.items() for premise, hypothesis in pairs]
    rng.shuffle(rows)
    return pd.DataFrame(rows, columns=["premise", "hypothesis", "label"])


def self_pairs(molecules: Sequence[list[Fact]], seed: int) -> pd.DataFrame:
    """Each molecule's caption paired with itself, and a sentence of another of its captions with itself,
    all entailment: what a baseline's self coverage asks of the model. Among :func:`text_pairs`' draws
    such pairs are too few for the model to learn that a text entails itself (full-text self coverage of
    held-out captions 0.85 without them, 0.98 with them, in CHANGELOG.md's runs); the fact stage likewise
    trains every wording paired with itself."""
    from molmix.nli.baselines import sentence_units

    rng = random.Random(f"{seed}:self-pairs")
    rows = []
    for facts in molecules:
        text = caption(facts, rng)
        sentence = rng.choice(sentence_units(caption(facts, rng)))
        rows += [(text, text, "entailment"), (sentence, sentence, "entailment")]
    return pd.DataFrame(rows, columns=["premise", "hypothesis", "label"]).drop_duplicates(ignore_index=True)


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
        rows["heldout" if heldout else "train"][relation([fp], [fh])].append((premise, hypothesis))
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


def caption_checks(test_raw: str | Path, model_dir: str | Path, every: int = 5) -> dict[str, Any]:
    """Every NLI method on held-out captions (every ``every``-th of the test split), with what each score
    should come out as, known from the demo's facts:

    - each caption against itself: coverage ~1 (SummaC-ZS: ~1), hallucination and unsupported ~0;
    - against the test caption sharing the fewest facts with it (exclusive slots make some overlap
      common): coverage should track the share of its facts the other caption states
      (``unrelated_fact_overlap``);
    - as the generation for the next test caption's reference (shifted references): unsupported should
      track the share of its facts that reference does not state (``shifted_unstated_share``), which
      Eq. 6's hallucination does not.
    """
    from molmix.nli.atomic import PairScorer, score_units, summarize
    from molmix.nli.baselines import POOLING, baseline_units
    from molmix.nli.model import NLIModel

    test = read_artifact(test_raw, "pairs")
    facts = [set(cell.splitlines()) for cell in test["facts"]]
    chosen = range(0, len(test), every)
    unrelated = [
        min((j for j in range(len(test)) if j != i), key=lambda j: len(facts[i] & facts[j])) for i in chosen
    ]
    shifted = [(i + 1) % len(test) for i in chosen]
    overlap = np.array(
        [len(facts[i] & facts[j]) / len(facts[i]) for i, j in zip(chosen, unrelated, strict=True)]
    )
    unstated = np.array(
        [len(facts[i] - facts[j]) / len(facts[i]) for i, j in zip(chosen, shifted, strict=True)]
    )
    scorer = PairScorer(NLIModel(model_dir, batch_size=256))
    checks: dict[str, Any] = {
        "n": len(chosen),
        "unrelated_fact_overlap": float(overlap.mean()),
        "shifted_unstated_share": float(unstated.mean()),
    }
    for method in NLI_METHODS:

        def units(rows: Sequence[int], method: str = method) -> list[list[str]]:
            texts = [test["caption"][i] for i in rows]
            return (
                [decompose_rules(text) for text in texts]
                if method == "atomic"
                else baseline_units(method, texts)
            )

        pooling = POOLING.get(method, "cross")
        itself = summarize(score_units(units(chosen), units(chosen), scorer, pooling))
        other = score_units(units(chosen), units(unrelated), scorer, pooling)
        found = {
            "self_coverage": itself["coverage"],
            "unrelated_coverage": float(other["coverage"].mean()),
            "unrelated_coverage_error": float(np.abs(other["coverage"].to_numpy() - overlap).mean()),
        }
        if pooling == "cross":
            against_shifted = score_units(units(shifted), units(chosen), scorer, pooling)
            found |= {
                "self_hallucination": itself["hallucination"],
                "self_unsupported": itself["unsupported"],
                "shifted_hallucination": float(against_shifted["hallucination"].mean()),
                "shifted_unsupported": float(against_shifted["unsupported"].mean()),
                "shifted_unsupported_error": float(
                    np.abs(against_shifted["unsupported"].to_numpy() - unstated).mean()
                ),
            }
        checks[method] = found
    return checks


def pair_dataset(tokenizer, pairs: pd.DataFrame, max_length: int) -> list[dict[str, Any]]:
    """Tokenised (premise, hypothesis) pairs with their label ids, as the Trainer takes them."""
    encoded = tokenizer(
        list(pairs["premise"]), list(pairs["hypothesis"]), truncation=True, max_length=max_length
    )
    labels = [LABEL2ID[label] for label in pairs["label"]]
    return [
        {"input_ids": ids, "attention_mask": mask, "labels": label}
        for ids, mask, label in zip(encoded["input_ids"], encoded["attention_mask"], labels, strict=True)
    ]


def stage_dirs(out_dir: str | Path, stages: Sequence[str]) -> dict[str, Path]:
    """The output folder of each training stage: ``out_dir`` for the last, ``<out_dir>.<stage>`` for the
    others, which write nothing there, only checkpoints in its work folder while they train."""
    out_dir = Path(out_dir)
    return {
        stage: out_dir if stage == stages[-1] else out_dir.parent / f"{out_dir.name}.{stage}"
        for stage in stages
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

    ``cfg`` is ``nli.model.training``: the data and model settings, ``arguments`` (TrainingArguments
    keywords) and ``text_pairs``. Training has two stages: ``facts`` on the fact pairs, then ``texts``
    (unless ``text_pairs.pairs_per_label`` is 0) on :func:`text_pairs` of the train split together with
    ``text_pairs.fact_pairs_per_label`` fact pairs per label, with ``text_pairs.arguments`` over
    ``arguments``. Checkpoints go to each stage's work folder; a re-run after a kill resumes the newest
    one (:func:`molmix.training.train_and_save`), and a ``texts`` checkpoint makes the ``facts`` stage
    unnecessary.
    """
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from molmix.model_card import Card, data_file
    from molmix.training import (
        resumable_checkpoint,
        save_model,
        train_and_save,
        trainer_arguments,
        work_dir_for,
    )

    raw = read_artifact(train_raw, "pairs")
    facts = facts_in_split(raw, str(train_raw))
    pairs = labelled_pairs(facts, cfg["heldout_fraction"], cfg["pairs_per_label"], seed, cfg["neutral_ratio"])
    texts_cfg = cfg["text_pairs"]
    molecules = molecules_in_split(raw, str(train_raw))
    train_texts = text_pairs(molecules, texts_cfg["pairs_per_label"], seed)
    if len(train_texts):
        train_texts = pd.concat([train_texts, self_pairs(molecules, seed)]).drop_duplicates(
            ["premise", "hypothesis"], ignore_index=True
        )
    log.info(
        "demo NLI pairs from %d facts: train %s, held-out %s; text pairs %s",
        len(facts),
        pairs["train"]["label"].value_counts().to_dict(),
        pairs["heldout"]["label"].value_counts().to_dict(),
        train_texts["label"].value_counts().to_dict(),
    )
    frames = [*pairs.values(), train_texts]
    sentences = sorted({s for frame in frames for s in (*frame["premise"], *frame["hypothesis"])})
    tokenizer = train_tokenizer(sentences, cfg["vocab_size"])
    stages = {"facts": (pairs["train"], cfg["arguments"])}
    if len(train_texts):
        replayed = labelled_pairs(
            facts, cfg["heldout_fraction"], texts_cfg["fact_pairs_per_label"], seed, cfg["neutral_ratio"]
        )["train"]
        mixed = pd.concat([replayed, train_texts]).sample(frac=1, random_state=seed, ignore_index=True)
        stages["texts"] = (mixed, {**cfg["arguments"], **texts_cfg["arguments"]})
    names = list(stages)
    folders = stage_dirs(out_dir, names)
    settings = {"cfg": cfg, "seed": seed, "train": pairs["train"].to_dict("records")}
    stage_settings = {
        name: {**settings, "stage": name, "texts": train_texts.to_dict("records")} for name in names
    }
    # a checkpoint of the texts stage is resumed without training the facts stage again
    resume_texts = "texts" in stages and resumable_checkpoint(work_dir_for(out_dir), stage_settings["texts"])
    first = names.index("texts") if resume_texts else 0
    card = Card(
        what="The demo's NLI model: a tiny DeBERTa-v2 cross-encoder (contradiction, entailment, neutral) "
        "trained on the demo's own fact pairs, then on caption and sentence pairs too; it stands in for a "
        "pretrained NLI model offline.",
        data=[
            data_file(train_raw, len(pairs["train"]), "fact pairs labelled by the facts each side states"),
            data_file(train_raw, len(train_texts), "caption and sentence pairs labelled the same way"),
        ],
        method="Sequence classification from randomly initialised weights with transformers' `Trainer`, "
        "first on the fact pairs, then on fact and text pairs; a WordPiece tokenizer trained on all "
        "their sentences.",
        settings=cfg,
        seed=seed,
        scores={str(metrics_path): "held-out accuracy, written by the same step after saving"},
        pipeline_tag="text-classification",
        tags=["nli"],
    )
    model = build_model(tokenizer, cfg["architecture"], cfg["max_length"], seed)
    losses = {}
    for name in names[first:]:
        frame, arguments = stages[name]
        dataset = pair_dataset(tokenizer, frame, cfg["max_length"])

        def make_trainer(arguments=arguments, folder=folders[name], dataset=dataset, model=model):
            args = TrainingArguments(**trainer_arguments(arguments, folder, seed, disable_tqdm=True))
            return Trainer(
                model=model,
                args=args,
                train_dataset=dataset,
                data_collator=DataCollatorWithPadding(tokenizer),
            )

        last = name == names[-1]
        trainer, result = train_and_save(
            make_trainer,
            stage_settings[name],
            folders[name],
            (lambda t: save_model(t, tokenizer, out_dir, card)) if last else (lambda t: None),
        )
        model = trainer.model
        losses[name] = float(result.training_loss)
        log.info("demo NLI model, %s stage (%d pairs): training loss %.3f", name, len(frame), losses[name])
    metrics = {
        "facts": len(facts),
        "train_pairs": len(pairs["train"]),
        "train_text_pairs": len(train_texts),
        "train_loss": losses,
        "heldout": evaluate(out_dir, pairs["heldout"]),
        "label_order": [ID2LABEL[i] for i in sorted(ID2LABEL)],
    }
    log.info(
        "demo NLI model: held-out accuracy %.3f on %d pairs",
        metrics["heldout"]["accuracy"],
        metrics["heldout"]["n"],
    )
    if test_raw is not None:
        test = read_artifact(test_raw, "pairs")
        heldout_texts = text_pairs(molecules_in_split(test, str(test_raw)), HELDOUT_TEXT_PAIRS, seed + 1)
        metrics["heldout_texts"] = evaluate(out_dir, heldout_texts)
        metrics["captions"] = caption_checks(test_raw, out_dir)
        log.info("held-out text pairs: accuracy %.3f", metrics["heldout_texts"]["accuracy"])
        log.info("held-out captions: %s", metrics["captions"])
    write_json(metrics_path, metrics)
    return metrics
