"""``molmix score``: score a MolT5-format TSV or a ``generations`` Parquet with the MolT5 / L+M-24 metrics.

Prints one JSON object of corpus-level metrics (``bleu2 bleu4 rouge1 rouge2 rougeL meteor`` for
mol2cap, ``bleu exact levenshtein validity maccs_fts rdk_fts morgan_fts fcd`` for cap2mol) with
``n`` and the tokenizer and conventions used. Reference statistics are cached (``--cache-dir``),
so scoring many systems on one test set computes them once.
"""

from __future__ import annotations

import argparse
import json
import sys

from molmix.names import TASKS
from molmix.scoring.io import MAX_CAPTION_CHARACTERS
from molmix.scoring.molecules import CONVENTIONS, MAX_SMILES_CHARACTERS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0]
    parser.epilog = (
        f"Input bounds: a SMILES longer than {MAX_SMILES_CHARACTERS:,} characters is not parsed and counts as "
        f"invalid (n_overlong in the output); a caption longer than {MAX_CAPTION_CHARACTERS:,} characters and a "
        "NUL byte in a reference or prediction are errors naming the row."
    )
    parser.add_argument("file", metavar="FILE", help="MolT5-format TSV or generations Parquet")
    parser.add_argument("--task", choices=TASKS, help="scoring direction (default: from the file)")
    from molmix.config import schema_defaults
    from molmix.runtime import user_cache_dir

    defaults = schema_defaults()["score"]  # the pipeline's score section, so both score alike
    parser.add_argument(
        "--text-tokenizer",
        default=defaults["text_tokenizer"],
        metavar="PATH_OR_ID",
        help="WordPiece tokenizer for BLEU/METEOR: folder, tokenizer.json, Hub id or bert-base-uncased "
        "(packaged); default: %(default)s, as the official scorers",
    )
    parser.add_argument(
        "--fallback-tokenizer",
        default=defaults["fallback_tokenizer"] or "",
        metavar="PATH_OR_ID",
        help="used, and named in the output, when --text-tokenizer cannot be loaded; '' for none "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--max-text-tokens",
        type=int,
        default=defaults["max_text_tokens"],
        help="truncation of captions (tokens; default: %(default)s)",
    )
    parser.add_argument(
        "--invalid-smiles",
        choices=CONVENTIONS,
        default=defaults["invalid_smiles"],
        help="which convention the *_fts keys follow (both are always printed as *_fts_molt5 / *_fts_lpm24; "
        "default: %(default)s)",
    )
    parser.add_argument(
        "--no-fcd",
        action="store_false",
        dest="fcd",
        default=defaults["fcd"],
        help="skip the Fréchet ChemNet Distance",
    )
    parser.add_argument("--morgan-radius", type=int, default=defaults["morgan_radius"])
    parser.add_argument("--references", metavar="FILE", help="references file the predictions must match")
    parser.add_argument("--json", metavar="OUT", help="also write the JSON summary here")
    parser.add_argument("--per-item", metavar="OUT", help="write per-item scores (Parquet) here")
    parser.add_argument(
        "--cache-dir",
        default=str(user_cache_dir("reference-statistics")),
        help="reference statistics cache (default: %(default)s)",
    )
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for ChemNet")


def run(args: argparse.Namespace) -> int:
    from molmix.runtime import configure_threads, pin_cpu_kernels, setup_logging

    setup_logging()
    pin_cpu_kernels()
    configure_threads(args.threads)
    from molmix.artifacts import write_artifact, write_json
    from molmix.names import UnknownName
    from molmix.scoring.core import ScoreSettings, score_file
    from molmix.scoring.io import ScoringInputError
    from molmix.scoring.text import WordNetMissing
    from molmix.scoring.tokenizer import TokenizerError

    settings = ScoreSettings(
        text_tokenizer=args.text_tokenizer,
        fallback_tokenizer=args.fallback_tokenizer or None,
        max_text_tokens=args.max_text_tokens,
        invalid_smiles=args.invalid_smiles,
        fcd=args.fcd,
        morgan_radius=args.morgan_radius,
    )
    try:
        per_item, summary = score_file(
            args.file, args.task, settings, None if args.no_cache else args.cache_dir, args.references
        )
    except (ScoringInputError, UnknownName, TokenizerError, WordNetMissing) as err:
        print(f"molmix score: error: {err}", file=sys.stderr)
        return 2
    if args.per_item:
        write_artifact(per_item, args.per_item, "scores", extra_metadata={"summary": summary})
    if args.json:
        write_json(args.json, summary)
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0
