"""Pipeline steps of the model stages I: tokenizer, base model, per-task SFT, negative models, checks.

Each function is one Snakemake step: it reads artifacts, trains or loads with :mod:`molmix.lm` /
:mod:`molmix.negatives`, and writes model folders and JSON/Parquet side outputs atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from molmix import lm
from molmix.artifacts import read_artifact, write_json
from molmix.model_card import Card, data_file
from molmix.names import CAPTION_TASK, TASKS

log = logging.getLogger(__name__)


def train_tokenizer(train_path: str, cfg: Mapping[str, Any], out_dir: str) -> None:
    lm.train_tokenizer(lm.corpus_texts(read_artifact(train_path, "pairs")), cfg["vocab_size"], out_dir)


def init_base_model(tokenizer_dir: str, cfg: Mapping[str, Any], seed: int, out_dir: str) -> None:
    lm.init_causal_lm(tokenizer_dir, cfg["architecture"], seed, out_dir)


def _write_history(history: pd.DataFrame, path: str) -> None:
    from molmix.artifacts import atomic_path

    with atomic_path(path) as tmp:
        history.to_csv(tmp, index=False)


def train_causal_lm(
    model_dir: str,
    train_path: str,
    tasks: list[str],
    cfg: Mapping[str, Any],
    seed: int,
    out_dir: str,
    history_path: str,
) -> None:
    """SFT of ``model_dir`` on ``tasks`` over the training pairs (base pretraining or per-task SFT)."""
    pairs = read_artifact(train_path, "pairs")
    records = lm.sft_records(pairs, tasks)
    log.info("training %s on %d %s examples", model_dir, len(records), "+".join(tasks))
    what = (
        "The shared base model: pretrained on both directions (it plays Meditron-7B's role)."
        if set(tasks) == set(TASKS)
        else f"The per-task model of {tasks[0]}: the base fine-tuned on that direction only (§3.2.1)."
    )
    names = "+".join(tasks)
    data = data_file(train_path, what=f"pairs, as {len(records)} {names} prompt/completion records")
    card = Card(what=what, data=[data], scores={history_path: "training loss by step"})
    history = lm.train_sft(model_dir, records, cfg, seed, out_dir, card)
    _write_history(history, history_path)


def train_negative_model(
    tokenizer_dir: str,
    train_path: str,
    task: str,
    cfg: Mapping[str, Any],
    seed: int,
    out_dir: str,
    history_path: str,
) -> None:
    from molmix.negatives import train_seq2seq

    pairs = read_artifact(train_path, "pairs")
    data = data_file(train_path, len(pairs), f"pairs, as {task} source/target")
    card = Card(data=[data], scores={history_path: "training loss by step"})
    history = train_seq2seq(tokenizer_dir, pairs, task, cfg, seed, out_dir, card)
    _write_history(history, history_path)


def caption_overlap(references: list[str], predictions: list[str]) -> dict[str, float]:
    """Corpus BLEU-2 and mean ROUGE-L on whitespace tokens: a quick learning signal, not the paper metric."""
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu
    from rouge_score import rouge_scorer

    bleu2 = corpus_bleu(
        [[r.split()] for r in references],
        [p.split() for p in predictions],
        weights=(0.5, 0.5),
        smoothing_function=SmoothingFunction().method1,
    )
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    rouge = [scorer.score(r, p)["rougeL"].fmeasure for r, p in zip(references, predictions, strict=True)]
    return {"bleu2": bleu2, "rougeL": sum(rouge) / max(len(rouge), 1)}


def smiles_validity(predictions: list[str]) -> float:
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    valid = [p.strip() != "" and Chem.MolFromSmiles(p) is not None for p in predictions]
    return sum(valid) / max(len(valid), 1)


def learning_check(models: Mapping[str, str], test_path: str, cfg: Mapping[str, Any], out_json: str) -> dict:
    """Greedy Mol2Cap overlap and Cap2Mol validity of each model on the test split.

    Shows that the embedded models learn: the per-task models must beat the untrained base.
    """
    from molmix.generate import generate_tasks

    test = read_artifact(test_path, "pairs")
    report: dict[str, Any] = {"n": len(test)}
    for name, model_dir in models.items():
        row = {}
        for task, frame, stats in generate_tasks(dict.fromkeys(TASKS, model_dir), test, cfg, name):
            if task == CAPTION_TASK:
                row.update(caption_overlap(frame["reference"].tolist(), frame["prediction"].tolist()))
            else:
                row["validity"] = smiles_validity(frame["prediction"].tolist())
            row[f"{task}_tokens_per_second"] = stats["tokens_per_second"]
        report[name] = row
        log.info("%s: %s", name, row)
    write_json(out_json, report)
    return report
