"""Decoding time of one model with batches in input order against length-sorted batches (``generate.length_sorted``).

Usage, after `make demo` (or bench/demo_run.py) has finished in RUN_DIR:
    .venv/bin/python bench/generation_batches.py --model RUN_DIR/results/models/demo/merged/slerp \\
        --pairs RUN_DIR/resources/datasets/demo/raw/test.parquet [--task mol2cap] [--batch-size 50]
Decodes every pair of the split with the config's greedy settings (``generate`` of config.yaml) in
both orders, alternating, ``--repeats`` times in one process, and prints the median seconds of each
and whether the outputs are identical. One thread unless ``--threads``.
"""

import argparse
import statistics
import time
from pathlib import Path

import torch

from molmix.artifacts import read_artifact
from molmix.config import load_config
from molmix.generate import generate_for_pairs, load_generator


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--task", default="mol2cap")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(Path(__file__).resolve().parents[1] / "config.yaml")["generate"]
    if args.batch_size:
        cfg["batch_size"] = args.batch_size
    pairs = read_artifact(args.pairs, "pairs")
    generator = load_generator(args.model)
    seconds, outputs = {False: [], True: []}, {}
    for _ in range(args.repeats):
        for length_sorted in (False, True):
            start = time.perf_counter()
            frame, _ = generate_for_pairs(
                args.model,
                pairs,
                args.task,
                {**cfg, "length_sorted": length_sorted},
                "bench",
                generator=generator,
            )
            seconds[length_sorted].append(time.perf_counter() - start)
            outputs[length_sorted] = frame["prediction"].tolist()
    for length_sorted, times in seconds.items():
        print(
            f"length_sorted={length_sorted}: median {statistics.median(times):.2f} s for {len(pairs)} inputs"
        )
    print(f"identical outputs: {outputs[False] == outputs[True]}")


if __name__ == "__main__":
    main()
