"""Scoring a set of predictions: per-item scores, the corpus summary and the pipeline steps."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molmix.names import CAPTION_TASK, MOLECULE_TASK, check_task
from molmix.scoring import fcd as fcd_module
from molmix.scoring import molecules, text
from molmix.scoring.io import ScoringInputError, align_references, read_items, read_references
from molmix.scoring.references import (
    ReferenceStatistics,
    cached_statistics,
    compute_statistics,
    load_statistics,
    mismatch,
    save_statistics,
    statistics_key,
    statistics_settings,
)
from molmix.scoring.tokenizer import SCIBERT, TextTokenizer, resolve_text_tokenizer

log = logging.getLogger(__name__)

SUMMARY_KEYS = {
    CAPTION_TASK: ("bleu2", "bleu4", "rouge1", "rouge2", "rougeL", "meteor"),
    MOLECULE_TASK: ("bleu", "exact", "levenshtein", "validity", "maccs_fts", "rdk_fts", "morgan_fts", "fcd"),
}
DEFINITIONS = {
    "bleu2": "nltk corpus BLEU, weights (0.5, 0.5), over WordPiece tokens of the text tokenizer",
    "bleu4": "nltk corpus BLEU, weights (0.25,)*4, over WordPiece tokens of the text tokenizer",
    "rouge1": "mean rouge-score ROUGE-1 F-measure (default tokenizer, no stemming)",
    "rouge2": "mean rouge-score ROUGE-2 F-measure (default tokenizer, no stemming)",
    "rougeL": "mean rouge-score ROUGE-L F-measure (default tokenizer, no stemming)",
    "meteor": "mean nltk meteor_score over WordPiece tokens (WordNet 3.0 synonyms)",
    "bleu": "nltk corpus BLEU-4 over SMILES characters, all items",
    "exact": "share of items whose prediction has the reference's InChI",
    "levenshtein": "mean Levenshtein distance between prediction and reference strings, all items",
    "validity": "share of predictions RDKit parses into a molecule with at least one atom",
    "maccs_fts": "MACCS keys Tanimoto similarity to the reference, per the invalid-SMILES convention",
    "rdk_fts": "RDKit fingerprint Tanimoto similarity to the reference, per the invalid-SMILES convention",
    "morgan_fts": "Morgan count fingerprint Tanimoto similarity, per the invalid-SMILES convention",
    "fcd": "Fréchet ChemNet Distance (fcd-torch ChemNet, pad 350) between canonical valid references and predictions",
}
CONVENTION_TEXT = {
    "molt5": "fingerprint similarities averaged over valid predictions only (MolT5 scripts)",
    "lpm24": "invalid predictions count as similarity 0 (L+M-24 scripts)",
}


@dataclass(frozen=True)
class ScoreSettings:
    """The ``score`` section of the configuration (defaults: the schema's, :meth:`from_config`)."""

    text_tokenizer: str
    fallback_tokenizer: str | None
    max_text_tokens: int
    invalid_smiles: str
    fcd: bool
    morgan_radius: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ScoreSettings:
        """Settings from a ``score`` section; keys it leaves out take the schema's defaults."""
        from molmix.config import schema_defaults

        return cls(**{**schema_defaults()["score"], **cfg})


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


class Scorer:
    """Scores predictions of one task; loads the tokenizer (Mol2Cap) once for many systems.
    ``meteor=False``: a scorer for reference statistics only, without the METEOR process."""

    def __init__(self, task: str, settings: ScoreSettings, meteor: bool = True):
        self.task = check_task(task)
        self.settings = settings
        self.tokenizer: TextTokenizer | None = None
        self.fallback_reason: str | None = None
        # forked before the tokenizer loads
        self.meteor = text.MeteorWorker() if task == CAPTION_TASK and meteor else None
        if task == CAPTION_TASK:
            self.tokenizer, self.fallback_reason = resolve_text_tokenizer(
                settings.text_tokenizer, settings.fallback_tokenizer, settings.max_text_tokens
            )

    def key(self, ids, references) -> str:
        settings = statistics_settings(
            self.task, self.tokenizer, self.settings.morgan_radius, self.settings.fcd
        )
        return statistics_key(self.task, ids, references, settings)

    def _compute_args(self) -> dict:
        return {
            "tokenizer": self.tokenizer,
            "morgan_radius": self.settings.morgan_radius,
            "fcd": self.settings.fcd,
        }

    def reference_statistics(self, ids, references, cache_dir=None) -> ReferenceStatistics:
        key = self.key(ids, references)
        return cached_statistics(cache_dir, self.task, ids, references, key, **self._compute_args())

    def compute_reference_statistics(self, ids, references) -> ReferenceStatistics:
        return compute_statistics(
            self.task, ids, references, self.key(ids, references), **self._compute_args()
        )

    def check_statistics(self, stats: ReferenceStatistics, items: pd.DataFrame, source) -> None:
        key = self.key(items["id"].astype(str), items["reference"])
        if stats.task != self.task or stats.key != key:
            raise ScoringInputError(
                f"{source}: reference statistics do not belong to these references and settings "
                f"(key {stats.key}, expected {key}); recompute them"
            )
        problem = mismatch(stats, items["id"], items["reference"])
        if problem:
            raise ScoringInputError(
                f"{source}: reference statistics do not match the references ({problem}); recompute them"
            )

    def score(self, items: pd.DataFrame, stats: ReferenceStatistics) -> tuple[pd.DataFrame, dict[str, Any]]:
        """(per-item scores, corpus summary) of ``items`` (id, reference, prediction, model)."""
        predictions = items["prediction"].fillna("").astype(str).tolist()
        per_item = items[["id", "reference", "prediction"]].copy()
        per_item.insert(1, "task", self.task)
        per_item.insert(2, "model", items["model"].astype(str).to_numpy() if "model" in items else "")
        if self.task == CAPTION_TASK:
            scores, corpus = text.caption_item_scores(
                self.tokenizer, stats.tokens, stats.rouge_tokens, predictions, self.meteor
            )
            for name, values in scores.items():
                per_item[name] = values
            corpus |= {name: float(scores[name].mean()) for name in ("rouge1", "rouge2", "rougeL", "meteor")}
        else:
            corpus = self._score_molecules(per_item, predictions, stats)
        return per_item, self.summary(corpus, len(items), per_item["model"].iloc[0] if len(items) else "")

    def _score_molecules(self, per_item: pd.DataFrame, predictions: list[str], stats: ReferenceStatistics):
        """Cap2Mol metrics. A prediction whose canonical SMILES is a reference's reuses that
        reference's InChI, fingerprints and ChemNet activation; each other distinct molecule is
        computed once. ChemNet runs in a second thread (torch releases the GIL) while RDKit works
        (:class:`~molmix.scoring.fcd.CoreSharing`)."""
        mols = molecules.parse_smiles(predictions)
        valid = np.array([m is not None for m in mols])
        canonical = molecules.canonical_smiles(mols)
        known = {c: i for i, c in reversed(list(enumerate(stats.canonical))) if c is not None}
        new = {}  # canonical SMILES -> molecule, for molecules no reference has
        for c, mol in zip(canonical, mols, strict=True):
            if c is not None and c not in known:
                new.setdefault(c, mol)
        chemnet = (  # no torch without FCD
            fcd_module.CoreSharing(self._fcd, canonical, list(new), stats)
            if self.settings.fcd
            else contextlib.nullcontext()
        )
        with chemnet as sharing:
            new_inchi = dict(zip(new, molecules.inchis(list(new.values())), strict=True))
            new_fps = molecules.fingerprints(list(new.values()), self.settings.morgan_radius)
            new_fps = {name: dict(zip(new, fps, strict=True)) for name, fps in new_fps.items()}

            def lookup(c, from_references, from_new):
                return None if c is None else from_references[known[c]] if c in known else from_new[c]

            inchi = [lookup(c, stats.inchi, new_inchi) for c in canonical]
            per_item["valid"] = valid
            per_item["canonical_prediction"] = canonical
            per_item["exact"] = [p is not None and p == r for p, r in zip(inchi, stats.inchi, strict=True)]
            per_item["levenshtein"] = molecules.levenshtein(stats.references, predictions)
            corpus = {
                "bleu": molecules.char_bleu(stats.references, predictions),
                "exact": float(per_item["exact"].mean()),
                "levenshtein": float(per_item["levenshtein"].mean()),
                "validity": float(valid.mean()),
                "n_valid": int(valid.sum()),
                "n_invalid_references": int(sum(c is None for c in stats.canonical)),
                "n_overlong": sum(len(p) > molecules.MAX_SMILES_CHARACTERS for p in predictions),
            }
            for name in molecules.FINGERPRINTS:
                fps = [lookup(c, stats.fingerprints[name], new_fps[name]) for c in canonical]
                similarity = molecules.tanimoto(stats.fingerprints[name], fps)
                per_item[f"{name}_fts"] = similarity
                for convention in molecules.CONVENTIONS:
                    corpus[f"{name}_fts_{convention}"] = molecules.convention_mean(
                        similarity, valid, convention
                    )
                corpus[f"{name}_fts"] = corpus[f"{name}_fts_{self.settings.invalid_smiles}"]
            corpus["fcd"] = sharing.result() if sharing is not None else float("nan")
        return corpus

    def _fcd(
        self,
        canonical: list[str | None],
        new: list[str],
        stats: ReferenceStatistics,
        sharing: fcd_module.CoreSharing,
    ) -> float:
        """FCD between the references and the valid predictions; only ``new`` molecules need ChemNet."""
        known = {c: i for i, c in enumerate(c for c in stats.canonical if c is not None)}
        log.info(
            "FCD: %d valid predictions, %d need ChemNet", sum(c is not None for c in canonical), len(new)
        )
        new_rows = dict(zip(new, fcd_module.chemnet_activations(new, sharing=sharing), strict=True))
        rows = [
            stats.activations[known[c]] if c in known else new_rows[c] for c in canonical if c is not None
        ]
        prediction_activations = np.stack(rows) if rows else np.zeros((0, 512), dtype=np.float32)
        return fcd_module.fcd(stats.activations, prediction_activations)

    def summary(self, corpus: dict[str, float], n: int, model: str) -> dict[str, Any]:
        keys = SUMMARY_KEYS[self.task]
        summary: dict[str, Any] = {k: _finite(corpus[k]) for k in keys}
        summary |= {
            k: (_finite(v) if isinstance(v, float) else v) for k, v in corpus.items() if k not in keys
        }
        summary |= {
            "n": n,
            "task": self.task,
            "model": model,
            "metrics": {k: DEFINITIONS[k] for k in keys},
            "settings": asdict(self.settings),
        }
        notes = []
        if self.task == CAPTION_TASK:
            summary["tokenizer"] = self.tokenizer.describe()
            summary["tokenizer_fallback"] = self.fallback_reason
            comparable = self.tokenizer.name == SCIBERT
            summary["comparable_to_published"] = comparable
            if not comparable:
                notes.append(
                    f"BLEU and METEOR use the {self.tokenizer.name!r} tokenizer, not SciBERT "
                    f"({SCIBERT}) as the official scorers do: not comparable to published numbers"
                )
            if self.fallback_reason:
                notes.append(f"fallback tokenizer used because: {self.fallback_reason}")
        else:
            summary["conventions"] = {
                "invalid_smiles": self.settings.invalid_smiles,
                "invalid_smiles_definition": CONVENTION_TEXT[self.settings.invalid_smiles],
                "fcd": "fcd-torch ChemNet, one-hot padded to 350, canonical valid SMILES of each side",
            }
            if not self.settings.fcd:
                notes.append("FCD disabled (score.fcd: false)")
        summary["notes"] = notes
        return summary


def score_file(
    path: str | Path,
    task: str | None,
    settings: ScoreSettings,
    cache_dir: str | Path | None = None,
    references_path: str | Path | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Score a generations Parquet or MolT5 TSV (optionally against a separate references file)."""
    items, task = read_items(path, task)
    if references_path is not None:
        items = align_references(items, path, read_references(references_path, task), references_path)
    scorer = Scorer(task, settings)
    stats = scorer.reference_statistics(items["id"].astype(str), items["reference"], cache_dir)
    per_item, summary = scorer.score(items, stats)
    summary["input"] = str(path)
    return per_item, summary


# ---- pipeline steps


def test_references(test_path: str | Path, task: str) -> pd.DataFrame:
    return read_references(test_path, check_task(task))


def reference_statistics_step(test_path: str, task: str, cfg: Mapping[str, Any], out_path: str) -> None:
    """The ``reference_statistics`` rule: statistics of the test set's references for ``task``."""
    refs = test_references(test_path, task)
    scorer = Scorer(task, ScoreSettings.from_config(cfg), meteor=False)
    stats = scorer.compute_reference_statistics(refs["id"].astype(str), refs["reference"])
    save_statistics(stats, out_path)
    log.info("reference statistics of %d %s references -> %s", stats.n, task, out_path)


def score_step(
    generations_path: str,
    test_path: str,
    statistics_path: str,
    task: str,
    cfg: Mapping[str, Any],
    scores_path: str,
    summary_path: str,
) -> None:
    """The ``score_responses`` rule: per-item scores (Parquet) and the corpus summary (JSON).

    Generations of a model that could not be loaded (:func:`molmix.generate.generation_failure`)
    give per-item scores with no rows and a summary that says ``failed`` (why, and the generation's
    log) instead of metric values.
    """
    from molmix.artifacts import write_artifact, write_json
    from molmix.generate import generation_failure

    failure = generation_failure(generations_path)
    if failure is not None:
        task = check_task(task)
        summary = {
            **failure,
            "n": 0,
            "task": task,
            "model": Path(generations_path).parent.name,
            "input": str(generations_path),
        }
        log.warning("%s: not scored, its generation was not run: %s", generations_path, failure["failed"])
        empty = pd.DataFrame(
            {c: pd.Series([], dtype=object) for c in ("id", "task", "model", "reference", "prediction")}
        )
        write_artifact(empty, scores_path, "scores", params=dict(cfg), extra_metadata={"summary": summary})
        write_json(summary_path, summary)
        return
    settings = ScoreSettings.from_config(cfg)
    items, task = read_items(generations_path, task)
    items = align_references(items, generations_path, test_references(test_path, task), test_path)
    scorer = Scorer(task, settings)
    stats = load_statistics(statistics_path)
    scorer.check_statistics(stats, items, statistics_path)
    per_item, summary = scorer.score(items, stats)
    summary["input"] = str(generations_path)
    log.info("%s", {k: summary[k] for k in SUMMARY_KEYS[task]})
    write_artifact(per_item, scores_path, "scores", params=dict(cfg), extra_metadata={"summary": summary})
    write_json(summary_path, summary)
