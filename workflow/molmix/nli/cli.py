"""``molmix nli``: atomic-level cross-NLI hallucination and coverage of (reference, prediction) captions.

Prints one JSON object with ``hallucination`` (Eq. 6), ``unsupported``, ``coverage`` (Eq. 7), ``n`` and
``n_empty`` (items whose prediction has no atoms: coverage 0, hallucination and unsupported left out),
plus ``full``, ``sentence`` and ``summac`` objects of the same keys with ``--baselines``. Decompositions and pair probabilities are cached
(``--cache-dir``), so scoring several systems against one reference set decomposes it once.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

from molmix.names import NLI_BASELINES
from molmix.nli.decompose import BACKENDS
from molmix.scoring.io import MAX_CAPTION_CHARACTERS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from molmix.config import schema_defaults
    from molmix.runtime import user_cache_dir

    nli = schema_defaults()["nli"]  # the pipeline's nli section: the paper's models
    decomposer = nli["decomposer"]
    parser.description = __doc__.splitlines()[0]
    parser.epilog = (
        f"Input bounds: a caption longer than {MAX_CAPTION_CHARACTERS:,} characters is an error naming its pair; "
        "pairs longer than --max-length tokens are truncated and counted (n_truncated in the output)."
    )
    parser.add_argument(
        "--references",
        required=True,
        metavar="R",
        help="text file, one caption per line, or a Parquet with reference and prediction columns",
    )
    parser.add_argument(
        "--predictions",
        metavar="P",
        help="text file, one caption per line (not needed when R is a Parquet with both columns)",
    )
    parser.add_argument(
        "--nli-model",
        default=nli["model"]["id"],
        metavar="PATH_OR_ID",
        help="sequence-classification NLI model (default: %(default)s)",
    )
    parser.add_argument(
        "--decomposer",
        choices=BACKENDS,
        default=decomposer["backend"],
        help="atomic decomposition backend (default: %(default)s)",
    )
    parser.add_argument(
        "--decomposer-model",
        default=decomposer["model"],
        metavar="PATH_OR_ID",
        help="causal LM of --decomposer llm, model name of openai (default: %(default)s)",
    )
    parser.add_argument(
        "--openai-url",
        default=decomposer["openai"]["url"],
        help="OpenAI-compatible endpoint of --decomposer openai (default: %(default)s)",
    )
    parser.add_argument(
        "--zero-shot",
        action="store_true",
        help="send the Appx. E instruction without Fig. 11's example exchange",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=decomposer["max_new_tokens"],
        help="longest decomposition answer (tokens; default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=nli["scoring"]["batch_size"],
        help="NLI pairs per forward pass (default: %(default)s)",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=nli["scoring"]["max_length"],
        help="NLI pairs are truncated to this many tokens (default: %(default)s)",
    )
    parser.add_argument(
        "--baselines", action="store_true", help="also report full-text, sentence-level and SummaC-ZS NLI"
    )
    parser.add_argument("--json", metavar="OUT", help="also write the JSON summary here")
    parser.add_argument(
        "--per-item", metavar="OUT.parquet", help="write per-item scores, atoms and matrices here"
    )
    parser.add_argument(
        "--cache-dir",
        default=str(user_cache_dir("nli")),
        help="decomposition and NLI cache (default: %(default)s)",
    )
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")


class InputError(ValueError):
    """Unreadable or mismatched caption files."""


def read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read captions ({err})") from err


def read_pairs(references: str, predictions: str | None) -> pd.DataFrame:
    """``reference`` and ``prediction`` columns from two line files or one Parquet."""
    if references.endswith(".parquet") and predictions is None:
        try:
            frame = pd.read_parquet(references)
        except (OSError, ValueError) as err:
            raise InputError(f"{references}: not a readable Parquet file ({err})") from err
        missing = {"reference", "prediction"} - set(frame.columns)
        if missing:
            raise InputError(f"{references}: missing column(s) {sorted(missing)} (has {list(frame.columns)})")
        pairs = pd.DataFrame(
            {column: frame[column].fillna("").astype(str) for column in ("reference", "prediction")}
        )
        sources = {"reference": references, "prediction": references}
    elif predictions is None:
        raise InputError(
            "--predictions is required unless --references is a Parquet with reference and prediction columns"
        )
    else:
        refs, preds = read_lines(references), read_lines(predictions)
        if len(refs) != len(preds):
            raise InputError(
                f"{references} has {len(refs)} lines but {predictions} has {len(preds)}; line i of each must be one pair"
            )
        pairs = pd.DataFrame({"reference": refs, "prediction": preds})
        sources = {"reference": references, "prediction": predictions}
    for column, source in sources.items():
        long = pairs.index[pairs[column].str.len() > MAX_CAPTION_CHARACTERS]
        if len(long):
            raise InputError(
                f"{source}: the {column} of pair {long[0] + 1} is longer than {MAX_CAPTION_CHARACTERS:,} characters"
            )
    return pairs


def _clean(summary: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}


def run(args: argparse.Namespace) -> int:
    from molmix.runtime import configure_threads, pin_cpu_kernels, setup_logging

    setup_logging()
    pin_cpu_kernels()
    configure_threads(args.threads)
    from molmix.artifacts import write_json
    from molmix.nli.atomic import PairScorer, score_units, summarize
    from molmix.nli.baselines import POOLING, baseline_units
    from molmix.nli.decompose import DecompositionError, decompose
    from molmix.nli.model import NLIModel, NLIModelError
    from molmix.nli.steps import decomposition_store, nli_store, truncated_pairs

    cache = None if args.no_cache else args.cache_dir
    from molmix.config import schema_defaults

    decomposer = schema_defaults()["nli"]["decomposer"]
    cfg = {
        **decomposer,
        "backend": args.decomposer,
        "model": args.decomposer_model,
        "max_new_tokens": args.max_new_tokens,
        "one_shot": not args.zero_shot,
        "openai": {**decomposer["openai"], "url": args.openai_url, "model": args.decomposer_model},
    }
    try:
        pairs = read_pairs(args.references, args.predictions)
        store = decomposition_store(cache)
        reference_atoms = decompose(list(pairs["reference"]), cfg, store)
        prediction_atoms = decompose(list(pairs["prediction"]), cfg, store)
        scorer = PairScorer(
            NLIModel(args.nli_model, max_length=args.max_length, batch_size=args.batch_size), nli_store(cache)
        )
    except (InputError, DecompositionError, NLIModelError, OSError) as err:
        print(f"molmix nli: error: {err}", file=sys.stderr)
        return 2
    per_item = score_units(reference_atoms, prediction_atoms, scorer)
    summary = _clean(summarize(per_item))
    summary["n_truncated"] = truncated_pairs(scorer, reference_atoms, prediction_atoms)
    if args.baselines:
        for method in NLI_BASELINES:
            references = baseline_units(method, pairs["reference"])
            predictions = baseline_units(method, pairs["prediction"])
            units = score_units(references, predictions, scorer, POOLING[method])
            summary[method] = _clean(summarize(units))
            summary[method]["n_truncated"] = truncated_pairs(scorer, references, predictions)
            for score in ("hallucination", "unsupported", "coverage"):
                per_item[f"{method}_{score}"] = units[score]
    if args.per_item:
        from molmix.artifacts import atomic_path

        frame = pd.concat(
            [
                pairs,
                pd.DataFrame({"reference_atoms": reference_atoms, "prediction_atoms": prediction_atoms}),
                per_item,
            ],
            axis=1,
        )
        with atomic_path(args.per_item) as tmp:
            frame.to_parquet(tmp, index=False)
    if args.json:
        write_json(args.json, summary)
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0
