"""molmix's atomic-level cross-NLI against the author's ``cross-nli`` 0.1.0: speed and agreement.

Same NLI model, same atoms, same machine, one run. ``cross-nli`` is installed from PyPI with
``pip install --no-deps --target DIR cross-nli==0.1.0`` into a folder outside the repository
(default /tmp/molmix-cross-nli; its dependencies torch, transformers, numpy, pandas and tqdm are
the project's own), never vendored and not in requirements.lock. Its constructor downloads
``cross-encoder/nli-deberta-base`` and Llama-3-8B from the Hub, so the benchmark builds the object
without it and points its NLI model and tokenizer at the local model; its LLM decomposition is
replaced by our rules atoms, printed as the numbered list its parser reads. The local model must use
the ``cross-encoder`` label order (contradiction, entailment, neutral), which cross_nli hard-codes,
and no token types (cross_nli passes only input_ids), as the demo NLI model does.

Items: held-out demo captions (raw test split) as references, each paired with itself and with the
caption of another molecule (a stand-in for system outputs). Reported: scored pairs per second
(2 x L x N pairs per item, cross_nli's count) for cross_nli, for molmix cold (empty cache, batched,
deduplicated) and for molmix batched without deduplication; the ratios; and the largest per-item
difference where cross_nli is correct (both decompositions non-empty). cross_nli's returned
hallucination (the last item's score divided by N) and its crash on an empty decomposition are
shown as well.

    .venv/bin/python bench/nli_vs_cross_nli.py --nli-model results/models/demo/nli --items 60
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def install_cross_nli(target: Path) -> None:
    if not (target / "cross_nli" / "cross_nli.py").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(target),
                "cross-nli==0.1.0",
            ],
            check=True,
        )
    sys.path.insert(0, str(target))


def demo_items(test_raw: Path, n_items: int, seed: int) -> list[tuple[str, str]]:
    import pandas as pd

    captions = list(pd.read_parquet(test_raw)["caption"])
    rng = random.Random(seed)
    chosen = rng.sample(captions, min(n_items // 2, len(captions)))
    others = rng.sample(captions, len(chosen))
    return [(c, c) for c in chosen] + list(zip(chosen, others, strict=True))


class ScoreCapture(logging.Handler):
    """Collects the per-item scores cross_nli logs ("Hallucination score: x", "Coverage score: y")."""

    def __init__(self):
        super().__init__()
        self.hallucination, self.coverage = [], []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Hallucination score: "):
            self.hallucination.append(float(message.split(": ")[1]))
        elif message.startswith("Coverage score: "):
            self.coverage.append(float(message.split(": ")[1]))


def cross_nli_object(model_dir: str, atoms: dict[str, list[str]], data_path: Path):
    import torch
    from cross_nli import Cross_NLI
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    scorer = Cross_NLI.__new__(Cross_NLI)  # skip __init__: it downloads two Hub models
    scorer.path = str(data_path)
    scorer.device = torch.device("cpu")
    scorer.nli_id = model_dir
    scorer.tokenizer_nli = AutoTokenizer.from_pretrained(model_dir)
    scorer.model_nli = AutoModelForSequenceClassification.from_pretrained(model_dir).to(scorer.device)
    scorer.atomic_unit_extraction = lambda text: [
        "\n".join(f"{i}. {a}" for i, a in enumerate(atoms[text], 1))
    ]
    return scorer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nli-model", default=str(REPO / "results/models/demo/nli"))
    parser.add_argument("--test-raw", default=str(REPO / "resources/datasets/demo/raw/test.parquet"))
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cross-nli-dir", default="/tmp/molmix-cross-nli")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    from molmix.runtime import configure_threads

    configure_threads(args.threads)
    import numpy as np
    import torch

    from molmix.nli.atomic import PairScorer, score_units, unit_pairs
    from molmix.nli.decompose import decompose_rules
    from molmix.nli.model import NLIModel

    torch.set_num_threads(args.threads)
    install_cross_nli(Path(args.cross_nli_dir))
    workdir = Path(tempfile.mkdtemp(prefix="cross-nli-"))
    os.chdir(workdir)  # cross_nli logs to ./cross_nli.log on import
    import cross_nli.cross_nli as cross_module

    items = demo_items(Path(args.test_raw), args.items, args.seed)
    atoms = {text: decompose_rules(text) for pair in items for text in pair}
    references = [atoms[r] for r, _ in items]
    predictions = [atoms[p] for _, p in items]
    n_pairs = sum(2 * len(r) * len(p) for r, p in zip(references, predictions, strict=True))

    data = workdir / "data.jsonl"
    data.write_text("".join(json.dumps({"golden": r, "generated": p}) + "\n" for r, p in items))
    capture = ScoreCapture()
    cross_module.logging.getLogger().addHandler(capture)
    scorer = cross_nli_object(args.nli_model, atoms, data)
    start = time.perf_counter()
    returned_hallucination, returned_coverage = scorer.evaluation()
    cross_seconds = time.perf_counter() - start
    cross_module.logging.getLogger().removeHandler(capture)

    model = NLIModel(args.nli_model, batch_size=args.batch_size, device="cpu")
    start = time.perf_counter()
    ours = score_units(references, predictions, PairScorer(model))
    ours_seconds = time.perf_counter() - start
    all_pairs = [pair for r, p in zip(references, predictions, strict=True) for pair in unit_pairs(r, p)]
    start = time.perf_counter()
    model.predict(all_pairs)
    nodedup_seconds = time.perf_counter() - start

    hallucination_diff = np.abs(np.array(capture.hallucination) - ours["hallucination"].to_numpy()).max()
    coverage_diff = np.abs(np.array(capture.coverage) - ours["coverage"].to_numpy()).max()
    try:
        empty = cross_nli_object(args.nli_model, {"x": atoms[items[0][0]], "": []}, workdir / "empty.jsonl")
        (workdir / "empty.jsonl").write_text(json.dumps({"golden": "x", "generated": ""}) + "\n")
        empty.evaluation()
        empty_case = "no error"
    except Exception as err:  # noqa: BLE001 - recording what cross_nli raises is the point
        empty_case = f"{type(err).__name__}: {err}"
    empty_ours = score_units([atoms[items[0][0]]], [[]], PairScorer(model)).iloc[0]

    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} thread(s)",
        "nli_model": args.nli_model,
        "items": len(items),
        "pairs": n_pairs,
        "distinct_pairs": len(set(all_pairs)),
        "cross_nli_seconds": round(cross_seconds, 3),
        "cross_nli_pairs_per_second": round(n_pairs / cross_seconds, 1),
        "molmix_seconds": round(ours_seconds, 3),
        "molmix_pairs_per_second": round(n_pairs / ours_seconds, 1),
        "molmix_no_dedup_pairs_per_second": round(n_pairs / nodedup_seconds, 1),
        "speedup": round(cross_seconds / ours_seconds, 1),
        "speedup_no_dedup": round(cross_seconds / nodedup_seconds, 1),
        "max_abs_difference_hallucination": float(hallucination_diff),
        "max_abs_difference_coverage": float(coverage_diff),
        "agree_to_1e-5": bool(max(hallucination_diff, coverage_diff) < 1e-5),
        "cross_nli_returned_hallucination": returned_hallucination,
        "true_mean_hallucination": float(ours["hallucination"].mean()),
        "cross_nli_returned_coverage": returned_coverage,
        "true_mean_coverage": float(ours["coverage"].mean()),
        "cross_nli_on_empty_generation": empty_case,
        "molmix_on_empty_generation": {
            "coverage": float(empty_ours["coverage"]),
            "hallucination": "NaN (counted in n_empty)",
        },
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["agree_to_1e-5"] else 1


if __name__ == "__main__":
    sys.exit(main())
