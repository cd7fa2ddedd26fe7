"""The NLI pipeline steps called by the rules in rules/nli.smk: decompose, score, baselines, compare.

Inputs are ``generations`` artifacts of the mol2cap task (captions) and the test split; outputs
are ``atoms`` artifacts (one decomposition per item), ``nli_scores`` artifacts (per-item
hallucination and coverage of one method) with a JSON summary each, and the KL comparison.

A system whose model could not be loaded (:func:`molmix.generate.generation_failure`) has no captions:
its atoms and NLI scores have no rows and their metadata and summaries say ``failed``; the comparison
leaves it out, and refuses only when it is the preferred or dispreferred system.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molmix.artifacts import (
    ArtifactError,
    model_origin,
    read_artifact,
    read_metadata,
    write_artifact,
    write_json,
    write_text,
)
from molmix.generate import generation_failure
from molmix.names import CAPTION_TASK
from molmix.nli.atomic import PairScorer, pair_store, score_units, summarize, unit_pairs
from molmix.nli.baselines import POOLING, baseline_units
from molmix.nli.cache import ParquetStore
from molmix.nli.decompose import DECOMPOSITION_COLUMNS, DECOMPOSITION_VALUES, decompose_items
from molmix.nli.model import NLIModel
from molmix.tables import frame_to_html, frames_to_html

log = logging.getLogger(__name__)


class SystemNotRun(ValueError):
    """The NLI comparison names a system that was not run; the message names it and why."""


def _empty(columns: Mapping[str, Any]) -> pd.DataFrame:
    """A frame with no rows and these columns (name -> dtype)."""
    return pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in columns.items()})


DECOMPOSITION_STORE = "decompositions-v3"
"""Folder of the decomposition cache: facts and the truncation flag, keyed by batch plan (earlier
formats, ``decompositions/`` and ``decompositions-v2/``, are no longer read)."""
PAIR_STORE = "pairs-v2"
"""Folder of the NLI pair cache, keyed by batch plan (``pairs/``, the first format, is no longer read)."""


def decomposition_store(cache_dir: str | Path | None) -> ParquetStore | None:
    return (
        None
        if cache_dir is None
        else ParquetStore(Path(cache_dir) / DECOMPOSITION_STORE, DECOMPOSITION_COLUMNS, DECOMPOSITION_VALUES)
    )


def nli_store(cache_dir: str | Path | None) -> ParquetStore | None:
    return None if cache_dir is None else pair_store(Path(cache_dir) / PAIR_STORE)


def read_captions(path: str | Path, source: str) -> pd.DataFrame:
    """``id`` and ``text`` of the captions to decompose: the test split's references or a system's predictions."""
    if source == "reference":
        pairs = read_artifact(path, "pairs")
        return pd.DataFrame({"id": pairs["id"], "text": pairs["caption"]})
    generations = read_generations(path)
    return pd.DataFrame({"id": generations["id"], "text": generations["prediction"].fillna("")})


def read_generations(path: str | Path) -> pd.DataFrame:
    """A generations artifact of the caption task (NLI compares captions only)."""
    generations = read_artifact(path, "generations")
    wrong = generations.loc[generations["task"] != CAPTION_TASK, "task"]
    if len(wrong):
        raise ArtifactError(
            f"{path}: row {wrong.index[0]} has task {wrong.iloc[0]!r}; NLI evaluates {CAPTION_TASK} captions only"
        )
    if generations["id"].duplicated().any():
        raise ArtifactError(
            f"{path}: duplicate id {generations['id'][generations['id'].duplicated()].iloc[0]!r}"
        )
    return generations.reset_index(drop=True)


def decompose_step(
    captions_path: str | Path,
    source: str,
    cfg: Mapping[str, Any],
    cache_dir: str | Path | None,
    model_path: str | None,
    out: str | Path,
) -> None:
    """Decompose every caption of a test split (``source`` reference) or a generations file (prediction)."""
    failure = generation_failure(captions_path) if source == "prediction" else None
    if failure is not None:
        log.warning("%s: nothing to decompose, the system was not run: %s", captions_path, failure["failed"])
        empty = _empty({"id": object, "text": object, "atoms": object, "n_atoms": int, "truncated": bool})
        write_artifact(empty, out, "atoms", params=dict(cfg), extra_metadata=failure)
        return
    captions = read_captions(captions_path, source)
    items = decompose_items(list(captions["text"]), cfg, decomposition_store(cache_dir), model_path)
    captions["atoms"] = [item.atoms for item in items]
    captions["n_atoms"] = [len(item.atoms) for item in items]
    # the decomposer's answer was cut off at nli.decomposer.max_new_tokens (its last facts may be missing)
    captions["truncated"] = [item.truncated for item in items]
    n_truncated = int(captions["truncated"].sum())
    log.info(
        "%s: %d captions, %.1f atoms each, %d without atoms, %d decompositions cut off at max_new_tokens",
        captions_path,
        len(captions),
        captions["n_atoms"].mean(),
        int((captions["n_atoms"] == 0).sum()),
        n_truncated,
    )
    if n_truncated:
        log.warning(
            "%s: %d of %d decompositions reached nli.decomposer.max_new_tokens=%s and may miss facts",
            captions_path,
            n_truncated,
            len(captions),
            cfg.get("max_new_tokens"),
        )
    write_artifact(
        captions,
        out,
        "atoms",
        params=dict(cfg),
        extra_metadata={"n_truncated": n_truncated, "decomposer_model": model_origin(model_path)},
    )


def truncated_decompositions(generations: pd.DataFrame, atoms_path: str | Path) -> int:
    """How many of the generations' items have a decomposition in ``atoms_path`` cut off at the token limit."""
    atoms = read_artifact(atoms_path, "atoms")
    return int(atoms.loc[atoms["id"].isin(generations["id"]), "truncated"].sum())


def _aligned_atoms(generations: pd.DataFrame, atoms_path: str | Path, column: str) -> list[list[str]]:
    atoms = read_artifact(atoms_path, "atoms").set_index("id")
    missing = generations.loc[~generations["id"].isin(atoms.index), "id"]
    if len(missing):
        raise ArtifactError(
            f"{atoms_path}: no decomposition of id {missing.iloc[0]!r} ({len(missing)} missing)"
        )
    texts = atoms.loc[generations["id"], "text"].to_numpy()
    expected = generations[column].fillna("").to_numpy()
    differ = [i for i, (a, b) in enumerate(zip(texts, expected, strict=True)) if a != b]
    if differ:
        raise ArtifactError(
            f"{atoms_path}: the decomposed text of id {generations['id'][differ[0]]!r} is not the generations' "
            f"{column} (stale decomposition; re-run the decomposition)"
        )
    return [list(a) for a in atoms.loc[generations["id"], "atoms"]]


def _write_scores(
    generations: pd.DataFrame,
    per_item: pd.DataFrame,
    method: str,
    extra: Mapping[str, Any],
    cfg,
    out: str | Path,
    summary_path: str | Path,
) -> dict[str, Any]:
    frame = pd.concat([generations[["id", "task", "model", "reference", "prediction"]], per_item], axis=1)
    frame.insert(3, "method", method)
    summary = {
        "method": method,
        "system": str(generations["model"].iloc[0]) if len(generations) else "",
        **{k: None if isinstance(v, float) and np.isnan(v) else v for k, v in summarize(per_item).items()},
        **extra,
    }
    write_artifact(frame, out, "nli_scores", params=dict(cfg), extra_metadata={"summary": summary})
    write_json(summary_path, summary)
    log.info("%s NLI: %s", method, summary)
    return summary


def _scorer(nli_model: str | Path, cfg: Mapping[str, Any], cache_dir) -> PairScorer:
    return PairScorer(
        NLIModel(nli_model, max_length=cfg["max_length"], batch_size=cfg["batch_size"]), nli_store(cache_dir)
    )


def atomic_scores(
    generations: pd.DataFrame,
    reference_atoms: str | Path,
    prediction_atoms: str | Path,
    scorer: PairScorer,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-item atomic-level cross-NLI hallucination and coverage (Eqs. 6-7), and summary extras."""
    references = _aligned_atoms(generations, reference_atoms, "reference")
    predictions = _aligned_atoms(generations, prediction_atoms, "prediction")
    per_item = _score_logged("atomic", references, predictions, scorer)
    per_item.insert(0, "reference_atoms", references)
    per_item.insert(1, "prediction_atoms", predictions)
    pairs = {p for r, g in zip(references, predictions, strict=True) for p in unit_pairs(r, g)}
    return per_item, {"distinct_pairs": len(pairs)}


def _score_logged(
    method: str, references: list[list[str]], predictions: list[list[str]], scorer: PairScorer
) -> pd.DataFrame:
    """:func:`score_units`, logging how many pairs the model scored (the rest came from the cache or an
    earlier method; a count of work done, so not part of the summary, which depends on inputs only)."""
    before = scorer.pairs_scored
    per_item = score_units(references, predictions, scorer, POOLING.get(method, "cross"))
    log.info("%s: %d pairs scored by the NLI model", method, scorer.pairs_scored - before)
    return per_item


def baseline_scores(
    generations: pd.DataFrame, method: str, scorer: PairScorer
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-item full-text, sentence-level or SummaC-ZS NLI (:mod:`molmix.nli.baselines`), and summary extras."""
    references = baseline_units(method, generations["reference"].fillna(""))
    predictions = baseline_units(method, generations["prediction"].fillna(""))
    per_item = _score_logged(method, references, predictions, scorer)
    extra = {}
    if method == "full":
        extra["n_truncated"] = truncated_pairs(scorer, references, predictions)
    return per_item, extra


def truncated_pairs(scorer: PairScorer, references: list[list[str]], predictions: list[list[str]]) -> int:
    """How many (reference unit, prediction unit) pairs exceed the model's ``max_length`` (truncated when scored)."""
    return sum(
        scorer.model.truncated(p, h)
        for r, g in zip(references, predictions, strict=True)
        for p in r
        for h in g
    )


def score_step(
    generations_path: str | Path,
    reference_atoms: str | Path,
    prediction_atoms: str | Path,
    nli_model: str | Path,
    cfg: Mapping[str, Any],
    cache_dir: str | Path | None,
    outputs: Mapping[str, tuple[str | Path, str | Path]],
) -> dict[str, dict[str, Any]]:
    """Atomic-level cross-NLI and the full-text / sentence-level baselines of one system's captions,
    with one NLI model: method -> (scores, summary) paths of the methods to write."""
    failure = generation_failure(generations_path)
    if failure is not None:
        return _write_not_run(generations_path, failure, cfg, outputs)
    generations = read_generations(generations_path)
    scorer = _scorer(nli_model, cfg, cache_dir)
    # decompositions cut off at nli.decomposer.max_new_tokens, reported with every method's summary
    truncation = {
        "n_decomposition_truncated": truncated_decompositions(generations, prediction_atoms),
        "n_reference_decomposition_truncated": truncated_decompositions(generations, reference_atoms),
    }
    summaries = {}
    for method, (out, summary_path) in outputs.items():
        if method == "atomic":
            per_item, extra = atomic_scores(generations, reference_atoms, prediction_atoms, scorer)
        else:
            per_item, extra = baseline_scores(generations, method, scorer)
        extra.update(truncation)
        extra["nli_model"] = scorer.model.key
        summaries[method] = _write_scores(generations, per_item, method, extra, cfg, out, summary_path)
    return summaries


def _write_not_run(
    generations_path: str | Path,
    failure: Mapping[str, str],
    cfg: Mapping[str, Any],
    outputs: Mapping[str, tuple[str | Path, str | Path]],
) -> dict[str, dict[str, Any]]:
    """NLI outputs of a system that was not run: no rows, a summary that says why."""
    system = Path(generations_path).parent.name
    log.warning("%s: no captions to score, the system was not run: %s", system, failure["failed"])
    scores = ("hallucination", "unsupported", "coverage")
    columns = ("id", "model", "method", "reference", "prediction", *scores)
    empty = _empty({c: float if c in scores else object for c in columns})
    summaries = {}
    for method, (out, summary_path) in outputs.items():
        summary = {"method": method, "system": system, "n": 0, **failure}
        write_artifact(
            empty.assign(method=pd.Series([], dtype=object)),
            out,
            "nli_scores",
            params=dict(cfg),
            extra_metadata={"summary": summary, **failure},
        )
        write_json(summary_path, summary)
        summaries[method] = summary
    return summaries


def compare_step(
    score_files: Mapping[str, str | Path],
    test_path: str | Path,
    cfg: Mapping[str, Any],
    out_csv: str | Path,
    out_json: str | Path,
    summary_md: str | Path,
    summary_html: str | Path,
    figure_dir: str | Path,
) -> pd.DataFrame:
    """The KL comparison of NLI methods (Figs. 6, 7, 10), every system's means (Markdown, and HTML for
    the report), and the figures.

    ``score_files`` maps ``<method>__<system>`` to an ``nli_scores`` file.
    """
    from molmix.nli import figures
    from molmix.nli.kl import compare_methods

    test = read_artifact(test_path, "pairs").set_index("id")
    word_counts = test["caption"].str.split().str.len()
    coverage: dict[str, dict[str, pd.Series]] = {}
    scores: dict[str, dict[str, pd.DataFrame]] = {}
    rows = []
    not_run: dict[str, dict[str, str]] = {}
    for name, path in score_files.items():
        method, system = name.split("__", 1)
        metadata = read_metadata(path)
        if metadata.get("failed"):
            not_run[system] = {"failed": metadata["failed"], "log": metadata.get("log")}
            continue
        frame = read_artifact(path, "nli_scores").set_index("id")
        scores.setdefault(method, {})[system] = frame
        coverage.setdefault(method, {})[system] = frame["coverage"]
        rows.append({"system": system, "method": method, **summarize(frame.reset_index())})
    compare = cfg
    for role in ("preferred", "dispreferred"):
        if compare[role] in not_run:
            failure = not_run[compare[role]]
            raise SystemNotRun(
                f"nli.compare.{role}: system {compare[role]!r} was not run ({failure['failed']}; see "
                f"{failure['log']}), so there are no captions of it to compare; name a system that ran"
            )
    for system, failure in sorted(not_run.items()):
        log.warning("NLI comparison: %s left out, it was not run (%s)", system, failure["failed"])
    kl = compare_methods(
        coverage,
        compare["preferred"],
        compare["dispreferred"],
        word_counts,
        compare["long_caption_words"],
        compare["bins"],
        compare["smoothing"],
    )
    means = pd.DataFrame(rows).sort_values(["method", "system"])
    write_text(out_csv, kl.round(6).to_csv(index=False))
    write_json(
        out_json,
        {
            "preferred": compare["preferred"],
            "dispreferred": compare["dispreferred"],
            "bins": compare["bins"],
            "smoothing": compare["smoothing"],
            "kl": kl.to_dict(orient="records"),
            "systems": means.to_dict(orient="records"),
            "not_run": not_run,
        },
    )
    not_run_md = "".join(
        f"- {system}: not run — {failure['failed']}; see {failure['log']}\n"
        for system, failure in sorted(not_run.items())
    )
    write_text(
        summary_md,
        "## NLI scores per system and method\n\n"
        + means.to_markdown(index=False, floatfmt=".3f")
        + f"\n\n## KL(preferred = {compare['preferred']} || dispreferred = {compare['dispreferred']}) of coverage\n\n"
        + kl.to_markdown(index=False, floatfmt=".3f")
        + "\n"
        + (f"\n## Systems not run (left out)\n\n{not_run_md}" if not_run else ""),
    )
    n_items = int(means["n"].max()) if len(means) else 0
    write_text(
        summary_html,
        frames_to_html(
            "NLI scores",
            [
                (
                    means,
                    "NLI scores per system and method",
                    [
                        "Rows: a system and an NLI method (atomic: §3.3; full, sentence, summac: the baselines of "
                        "Fig. 6 B-D). Columns: hallucination (Eq. 6), unsupported (the share of generated units "
                        "no reference unit entails; ours) and coverage (Eq. 7; SummaC-ZS: P(ent) - P(con), in "
                        "[-1, 1]), means over the test items; SummaC-ZS has no hallucination score.",
                        f"n = {n_items} test items per system; n_empty: items whose generation has no units, "
                        "left out of the hallucination and unsupported means.",
                    ],
                ),
                (
                    kl,
                    f"KL(preferred = {compare['preferred']} || dispreferred = {compare['dispreferred']}) of coverage",
                    [
                        "Rows: an NLI method and a subset of the test items (all, or reference captions of at "
                        "least that many words). kl: the divergence of the two systems' coverage histograms "
                        f"({compare['bins']} bins, smoothing {compare['smoothing']}), in nats; the means say "
                        "which system a method favours.",
                    ],
                ),
            ],
        ),
    )
    Path(figure_dir).mkdir(parents=True, exist_ok=True)
    figures.score_distributions(
        {s: scores["atomic"][s] for s in compare["systems"] if s not in not_run},
        Path(figure_dir) / "atomic_scores",
    )
    for subset in kl["subset"].unique():
        figures.kl_comparison(
            coverage,
            kl[kl["subset"] == subset],
            compare,
            word_counts,
            subset,
            Path(figure_dir) / f"kl_{subset.replace('>=', 'min').replace(' ', '_')}",
        )
    return kl


def rank_step(
    summaries: Mapping[str, str | Path],
    caption_scores: Mapping[str, str | Path],
    out_csv: str | Path,
    out_md: str | Path,
    out_html: str | Path,
) -> pd.DataFrame:
    """Whether each NLI method ranks the systems as the caption metrics do (:func:`molmix.nli.kl.rank_agreement`).

    ``summaries`` maps ``<method>__<system>`` to an NLI summary, ``caption_scores`` a system to its
    caption metrics' summary; systems that were not run are left out.
    """
    from molmix.nli.kl import rank_agreement
    from molmix.scoring.core import SUMMARY_KEYS

    means, metrics, not_run = [], {}, set()
    for name, path in summaries.items():
        method, system = name.split("__", 1)
        summary = json.loads(Path(path).read_text())
        if summary.get("failed"):
            not_run.add(system)
            continue
        means.append({"system": system, "method": method, "coverage": summary["coverage"]})
    for system, path in caption_scores.items():
        if system not in not_run:
            scores = json.loads(Path(path).read_text())
            metrics[system] = {key: scores[key] for key in SUMMARY_KEYS[CAPTION_TASK]}
    ranks = rank_agreement(
        pd.DataFrame(means, columns=["system", "method", "coverage"]), pd.DataFrame(metrics).T
    )
    write_text(out_csv, ranks.round(6).to_csv(index=False))
    table = ranks.pivot(index="method", columns="metric", values="spearman").reindex(
        index=list(dict.fromkeys(ranks["method"])), columns=list(SUMMARY_KEYS[CAPTION_TASK])
    )
    write_text(
        out_md,
        "## Do the NLI methods rank systems as the caption metrics do?\n\n"
        f"Spearman's rho, across the {len(metrics)} systems that ran, between each method's mean coverage "
        "and each caption metric (1: the same order; 0: unrelated; -1: reversed).\n\n"
        + table.to_markdown(floatfmt=".2f")
        + "\n",
    )
    write_text(
        out_html,
        frame_to_html(
            table.reset_index(),
            "Do the NLI methods rank systems as the caption metrics do?",
            [
                f"Spearman's rho across the {len(metrics)} systems that ran, between each NLI method's mean "
                "coverage (rows) and each caption metric (columns): 1 the same order, 0 unrelated, -1 reversed.",
            ],
            float_format="{:.2f}",
        ),
    )
    log.info("rank agreement with the caption metrics:\n%s", table)
    return ranks
