"""How the demo's T5 negatives depend on the training seed: truncated outputs and valid rejected SMILES.

Usage:
    .venv/bin/python bench/negative_seeds.py --run RUN_DIR [--task cap2mol] [--seeds 1 2 3]
        [--set models.negative.training.num_train_epochs=10 ...] [--json OUT]
RUN_DIR is a finished demo (its tokenizer and data are reused). For each seed the negative model of
the task is trained as `train_negative_model` trains it (`models.negative` of RUN_DIR's config.yaml;
--set overrides any key of that config) and its negatives generated as `generate_negatives` does, on one thread
each, two seeds at a time; prints one line per seed and the minimum, so that a setting is chosen on
more than one seed.
"""

import argparse
import json
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

from molmix.config import validate_config
from molmix.runtime import start_step


def one_seed(run: Path, task: str, cfg: dict, negatives_cfg: dict, seed: int) -> dict:
    start_step(1, seed)
    from molmix.artifacts import read_artifact
    from molmix.bootstrap import smiles_validity
    from molmix.negatives import generate_negatives, train_seq2seq

    dataset = "demo"
    raw = read_artifact(run / f"resources/datasets/{dataset}/raw/train.parquet", "pairs")
    subsample = read_artifact(run / f"results/data/{dataset}/train.parquet", "pairs")
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        train_seq2seq(run / f"results/models/{dataset}/tokenizer", raw, task, cfg, seed, model)
        frame, summary = generate_negatives(model, subsample, task, negatives_cfg, "t5")
    row = {
        "seed": seed,
        "inputs": summary["inputs"],
        "truncated": summary["truncated"],
        "pairs": summary["pairs"],
    }
    if task == "cap2mol":
        row["rejected_valid"] = round(smiles_validity(frame["rejected"].tolist()), 3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished `make demo` folder")
    parser.add_argument("--task", default="cap2mol", choices=["mol2cap", "cap2mol"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 42])
    parser.add_argument("--set", action="append", default=[], help="DOTTED.KEY=VALUE of the config")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    config = yaml.safe_load((args.run / "config.yaml").read_text())
    for item in args.set:
        key, value = item.split("=", 1)
        *parents, leaf = key.split(".")
        target = config
        for name in parents:
            target = target[name]
        target[leaf] = yaml.safe_load(value)
    validate_config(config)  # the schema's defaults, as the pipeline gets them
    cfg = config["models"]["negative"]
    with ProcessPoolExecutor(2) as pool:
        futures = [
            pool.submit(one_seed, args.run, args.task, cfg, config["negatives"], s) for s in args.seeds
        ]
        rows = [f.result() for f in futures]
    for row in rows:
        print(json.dumps(row))
    summary = {"task": args.task, "negative": cfg, "negatives": config["negatives"], "seeds": rows}
    if args.task == "cap2mol":
        summary["min_rejected_valid"] = min(r["rejected_valid"] for r in rows)
        print(f"min rejected_valid {summary['min_rejected_valid']}, settings {args.set}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
