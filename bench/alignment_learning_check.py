"""The alignment learning check and generation throughput of a finished embedded-default run.

Usage, after the aligned models of the crossmodal init and the baselines have been generated in a
run folder (the repository, or a scratch --directory):
    .venv/bin/python bench/alignment_learning_check.py [--run .] [--init cap2mol]
Prints a Markdown table: per alignment method, the mean training loss over the first and last three
logged steps, the reward margin at the last logged step, test BLEU-2 (Mol2Cap) and SMILES validity
(Cap2Mol), with the baselines beside them; then tokens/s per model from the generation logs.
The metrics are the quick learning signals of molmix.bootstrap (whitespace BLEU-2, RDKit validity),
not the paper's scoring stage.
"""

import argparse
import re
from pathlib import Path

import pandas as pd

from molmix.artifacts import read_artifact
from molmix.bootstrap import caption_overlap, smiles_validity

THROUGHPUT = re.compile(r"generated (\d+) outputs, (\d+) tokens, (\d+) tokens/s")


def training_row(history_path: Path) -> dict:
    history = read_artifact(history_path, "training_log")
    logged = history.dropna(subset=["loss"])
    row = {
        "loss start": logged["loss"].head(3).mean(),
        "loss end": logged["loss"].tail(3).mean(),
        "steps": int(logged["step"].max()),
    }
    if "rewards/margins" in logged:
        row["margin end"] = logged["rewards/margins"].dropna().iloc[-1]
    return row


def generation_row(run: Path, dataset: str, model: str) -> dict:
    row = {}
    for task in ("mol2cap", "cap2mol"):
        frame = read_artifact(run / f"results/generations/{dataset}/{model}/{task}.parquet", "generations")
        if task == "mol2cap":
            row["BLEU-2 (Mol2Cap)"] = caption_overlap(
                frame["reference"].tolist(), frame["prediction"].tolist()
            )["bleu2"]
        else:
            row["validity (Cap2Mol)"] = smiles_validity(frame["prediction"].tolist())
        row[f"empty/truncated {task}"] = f"{int(frame['empty'].sum())}/{int(frame['truncated'].sum())}"
        log = run / f"logs/generate_responses/{dataset}/{model}/{task}.log"
        match = THROUGHPUT.findall(log.read_text()) if log.exists() else []
        if match:
            row[f"tokens/s {task}"] = int(match[-1][2])
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=".", type=Path)
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--init", default="cap2mol")
    parser.add_argument("--baselines", nargs="*", default=["base", "t5", "pertask"])
    args = parser.parse_args()
    rows = {}
    for model in args.baselines:
        rows[model] = generation_row(args.run, args.dataset, model)
    for method in ("sft", "dpo", "cpo", "kto"):
        history = args.run / f"results/aligned/{args.dataset}/{args.init}/{method}/history.parquet"
        if history.exists():
            model = f"{args.init}+{method}"
            rows[model] = {**training_row(history), **generation_row(args.run, args.dataset, model)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    print(table.to_markdown(floatfmt=".3f"))


if __name__ == "__main__":
    main()
