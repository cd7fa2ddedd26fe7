"""Data stage: fetch a dataset from its source, clean it, subsample it and build the test set.

Sources (``dataset.source`` in the config):
- ``lpm24``: L+M-24 from the Hugging Face Hub (``LPM-24_train`` split_train/split_valid for training
  and validation, ``LPM-24_train-extra`` split_valid as the pool of unseen test pairs, Appx. D), at the
  commits pinned in ``hub.revisions``, or a local snapshot of those repositories. The manifest records
  the commit each split was read at.
- ``chebi20``: MolT5-format TSV files (``CID<TAB>SMILES<TAB>description``) from paths or URLs; a file
  with a configured ``dataset.chebi20.sha256`` must match it (a URL must have one).
- ``demo``: the embedded demo dataset built from molecules shipped with rdkit.
- ``table``: one local Parquet or CSV file with ``smiles`` and ``caption`` columns (optional
  ``id``, ``category``, ``split``).

Each source yields three raw splits: ``train``, ``validation`` and ``test`` (the pool the held-out
test set is drawn from).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molmix.config import is_url
from molmix.demo_data import build_demo_dataset, stable_hash

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
COMMIT = re.compile(r"[0-9a-f]{40}")
PAIR_COLUMNS = ["id", "smiles", "caption", "category"]


class DataError(ValueError):
    """Input data that cannot be used; the message names the file and the row or column."""


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Reading sources


def _check_utf8(path: Path) -> None:
    data = path.read_bytes()
    if not data.strip():
        raise DataError(f"{path}: file is empty")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}: line {line} is not valid UTF-8 ({err.reason} at byte {err.start})"
        ) from None


def read_chebi20(path: str | os.PathLike) -> pd.DataFrame:
    """A MolT5-format ChEBI-20 split; SMILES are kept exactly as written (backslashes included)."""
    path = Path(path)
    _check_utf8(path)
    frame = pd.read_csv(
        path, sep="\t", dtype=str, quoting=csv.QUOTE_NONE, keep_default_na=False, on_bad_lines="error"
    )
    expected = ["CID", "SMILES", "description"]
    if list(frame.columns) != expected:
        raise DataError(
            f"{path}: header is {list(frame.columns)}, expected {expected} (MolT5 ChEBI-20 format)"
        )
    return pd.DataFrame(
        {
            "id": "chebi-" + frame["CID"],
            "smiles": frame["SMILES"],
            "caption": frame["description"],
            "category": None,
        }
    )


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A local Parquet or CSV table with at least ``smiles`` and ``caption`` columns."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file does not exist")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        _check_utf8(path)
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"smiles", "caption"} - set(frame.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}; has {list(frame.columns)}")
    if "id" not in frame:
        frame["id"] = [f"row-{i}" for i in range(len(frame))]
    if "category" not in frame:
        frame["category"] = None
    return frame


def _fetch(location: str, destination: Path) -> Path:
    """A local path as is, or a URL downloaded to ``destination``."""
    if not is_url(location):
        path = Path(location).expanduser()
        if not path.exists():
            raise DataError(f"{path}: file does not exist")
        return path
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_suffix(destination.suffix + ".part")
    try:
        urllib.request.urlretrieve(location, tmp)  # noqa: S310 (configured dataset URL)
    except OSError as err:
        raise DataError(
            f"{location}: download failed ({err}); this source needs the network, or set the "
            "config to a local copy of the file"
        ) from err
    os.replace(tmp, destination)
    return destination


def _checked_file(location: str, destination: Path, expected: str | None, split: str) -> tuple[Path, str]:
    """A ChEBI-20 split's local file or URL download, and its sha256, which must be ``expected`` when one
    is configured (``dataset.chebi20.sha256.<split>``). A URL without one is refused (as by the validator).
    """
    if is_url(location) and not expected:
        raise DataError(
            f"dataset.chebi20.{split}: {location} is a URL without a configured sha256 "
            f"(dataset.chebi20.sha256.{split})"
        )
    path = _fetch(location, destination)
    actual = sha256_file(path)
    if expected and actual != expected:
        where = f"{location} (downloaded to {path})" if is_url(location) else str(path)
        raise DataError(
            f"{where}: sha256 is {actual}, but dataset.chebi20.sha256.{split} is {expected}; the file is not "
            "the one the configuration names (changed upstream, damaged, or a different release)"
        )
    return path, actual


def _lpm24_split(
    repo: str, split: str, local_dir: str | None, revision: str | None
) -> tuple[pd.DataFrame, Path, str | None]:
    """One split of an L+M-24 repository (columns ``molecule``, ``caption``), the file read and the
    commit it was read at (``None`` when a local snapshot does not record one)."""
    from molmix.lm import fetched_commit

    if local_dir:
        root = Path(local_dir).expanduser()
        commit = fetched_commit(root)
        if revision and commit and commit != revision:
            raise DataError(
                f"{root}: local snapshot of {repo} is at commit {commit}, but hub.revisions pins {revision}"
            )
        if revision and not commit:
            log.warning(
                "%s: cannot tell which commit of %s this local snapshot is (pinned: %s)", root, repo, revision
            )
    else:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RevisionNotFoundError

        try:
            root = Path(
                snapshot_download(
                    repo, repo_type="dataset", revision=revision, allow_patterns=[f"data/{split}-*.parquet"]
                )
            )
        except RevisionNotFoundError:
            raise DataError(
                f"dataset {repo!r}: revision {revision!r} (hub.revisions) does not exist on the Hugging Face Hub"
            ) from None
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
            raise DataError(
                f"dataset {repo!r} ({split}) needs the Hugging Face Hub, which cannot be reached "
                f"({type(err).__name__}); download it elsewhere and set dataset.lpm24.local_dirs to "
                "the snapshot folders"
            ) from None
        # snapshot_download returns the cache's snapshots/<commit> folder
        commit = root.name if COMMIT.fullmatch(root.name) else None
    files = sorted(root.glob(f"data/{split}-*.parquet"))
    if not files:
        raise DataError(f"{root}: no data/{split}-*.parquet files for {repo}")
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    missing = {"molecule", "caption"} - set(frame.columns)
    if missing:
        raise DataError(f"{files[0]}: missing column(s) {sorted(missing)} expected in {repo}")
    return frame, files[0], commit


def load_source(
    cfg: Mapping[str, Any], seed: int, cache_dir: Path, revisions: Mapping[str, str] | None = None
) -> tuple[dict[str, pd.DataFrame], dict]:
    """Raw splits of the configured source, plus a manifest of the files read, their sha256 and, for
    Hub datasets, the commit read (``revisions``: repository -> pinned commit, from hub.revisions)."""
    revisions = revisions or {}
    source = cfg["source"]
    manifest: dict[str, Any] = {"source": source, "files": {}}
    if source == "demo":
        demo = cfg["demo"]
        frame = build_demo_dataset(
            demo["n_molecules"], demo["captions_per_molecule"], demo["max_smiles_length"], seed
        )
        splits = {s: frame[frame["split"] == s].drop(columns="split") for s in SPLITS}
        manifest["files"]["rdkit"] = "molecules shipped in the rdkit package"
    elif source == "chebi20":
        splits = {}
        chebi20 = cfg["chebi20"]
        for split in SPLITS:
            location = chebi20[split]
            path, digest = _checked_file(
                location,
                cache_dir / f"chebi20-{split}.txt",
                chebi20.get("sha256", {}).get(split),
                split,
            )
            manifest["files"][split] = {"path": str(path), "sha256": digest}
            if is_url(location):
                manifest["files"][split]["url"] = location
            splits[split] = read_chebi20(path)
    elif source == "table":
        path = Path(cfg["table"]["path"])
        frame = read_table(path)
        manifest["files"]["table"] = {"path": str(path), "sha256": sha256_file(path)}
        if "split" not in frame:
            raise DataError(f"{path}: a table source needs a 'split' column with {list(SPLITS)}")
        splits = {s: frame[frame["split"] == s].drop(columns="split") for s in SPLITS}
    elif source == "lpm24":
        lpm = cfg["lpm24"]
        local = lpm.get("local_dirs", {})
        parts = {
            "train": (lpm["train_repo"], "split_train"),
            "validation": (lpm["train_repo"], "split_valid"),
            "test": (lpm["test_repo"], "split_valid"),
        }
        splits = {}
        for split, (repo, hub_split) in parts.items():
            frame, path, commit = _lpm24_split(repo, hub_split, local.get(repo), revisions.get(repo))
            manifest["files"][split] = {
                "repo": repo,
                "split": hub_split,
                "revision": revisions.get(repo),
                "commit": commit,
                "sha256": sha256_file(path),
            }
            splits[split] = pd.DataFrame(
                {
                    "id": [f"{hub_split}-{i}" for i in range(len(frame))],
                    "smiles": frame["molecule"],
                    "caption": frame["caption"],
                    "category": frame["category"] if "category" in frame else None,
                }
            )
    else:
        raise DataError(f"dataset.source: unknown source {source!r}")
    return splits, manifest


# ---------------------------------------------------------------------------------------------
# Cleaning


def clean_pairs(frame: pd.DataFrame, name: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop unusable rows with counts: missing or empty text, SMILES RDKit cannot parse.

    Duplicate ids are an error (they would silently merge items downstream). SMILES are never
    rewritten: a SMILES RDKit rejects is dropped and counted, not repaired.
    """
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    frame = frame.reset_index(drop=True).copy()
    for column in ("id", "smiles", "caption"):
        frame[column] = frame[column].astype("string").str.strip()
    duplicated = frame["id"][frame["id"].duplicated()]
    if len(duplicated):
        raise DataError(f"{name}: duplicate id {duplicated.iloc[0]!r} (row {duplicated.index[0]})")
    empty = (
        frame["smiles"].isna() | (frame["smiles"] == "") | frame["caption"].isna() | (frame["caption"] == "")
    )
    parsed = frame["smiles"].map(lambda s: s is not pd.NA and s != "" and Chem.MolFromSmiles(s) is not None)
    invalid = ~empty & ~parsed.astype(bool)
    counts = {"rows": len(frame), "empty_text": int(empty.sum()), "invalid_smiles": int(invalid.sum())}
    for row in frame.index[invalid][:5]:
        log.warning("%s: row %d: RDKit cannot parse SMILES %r; dropped", name, row, frame.at[row, "smiles"])
    kept = frame[~empty & ~invalid].copy()
    kept["category"] = kept["category"].astype("string") if "category" in kept else pd.NA
    counts["kept"] = len(kept)
    log.info("%s: %s", name, counts)
    return kept.reset_index(drop=True), counts


# ---------------------------------------------------------------------------------------------
# Subsampling and the held-out test set


def _hash_order(ids: pd.Series, seed: int) -> np.ndarray:
    """Row positions ordered by a seeded, platform-independent hash of the ids."""
    keys = np.array([stable_hash(seed, i) for i in ids], dtype=np.uint64)
    return np.argsort(keys, kind="stable")


def allocate(sizes: Mapping[str, int], total: int) -> dict[str, int]:
    """Split ``total`` over strata proportionally to ``sizes`` (largest-remainder rounding)."""
    population = sum(sizes.values())
    exact = {k: total * n / population for k, n in sizes.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (-(exact[k] - counts[k]), k))[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def subsample(frame: pd.DataFrame, fraction: float, seed: int, stratify: bool = True) -> pd.DataFrame:
    """A seeded ``fraction`` of the rows, stratified by ``category`` when the column has values.

    Deterministic across runs and machines: rows are ranked by a hash of (seed, id), not by a
    random generator, and the output keeps the input's row order.
    """
    if not 0 < fraction <= 1:
        raise DataError(f"subsample.fraction must be in (0, 1], got {fraction}")
    total = max(1, round(fraction * len(frame))) if len(frame) else 0
    strata = frame["category"].fillna("") if stratify and frame["category"].notna().any() else None
    if strata is None:
        chosen = frame.index[_hash_order(frame["id"], seed)[:total]]
    else:
        counts = allocate(strata.value_counts().to_dict(), total)
        chosen = []
        for name, group in frame.groupby(strata, sort=True):
            chosen.extend(group.index[_hash_order(group["id"], seed)[: counts[name]]])
    return frame.loc[sorted(chosen)].reset_index(drop=True)


def held_out_test(pool: pd.DataFrame, seen: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """Unseen test pairs as in Appx. D: molecules absent from train/validation, first caption each."""
    from rdkit import Chem

    def canonical(smiles: str) -> str:
        return Chem.MolToSmiles(Chem.MolFromSmiles(smiles))

    seen_smiles = {canonical(s) for s in seen["smiles"]}
    keys = pool["smiles"].map(canonical)
    unseen = pool[~keys.isin(seen_smiles)].assign(_key=keys)
    first = unseen.drop_duplicates("_key", keep="first").drop(columns="_key")
    if len(first) < size:
        log.warning("test pool has %d unseen molecules, fewer than test_size=%d; using all", len(first), size)
    chosen = first.index[_hash_order(first["id"], seed)[:size]]
    return first.loc[sorted(chosen)].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Pipeline steps


def download_dataset(
    cfg: Mapping[str, Any],
    seed: int,
    outputs: Mapping[str, str],
    manifest: str,
    revisions: Mapping[str, str] | None = None,
) -> None:
    """Fetch the configured source and write its raw splits as ``pairs`` artifacts; each artifact's
    provenance and the manifest record where the split came from (file, sha256, Hub commit)."""
    from molmix.artifacts import write_artifact, write_json

    splits, record = load_source(cfg, seed, Path(manifest).parent / "downloads", revisions)
    for split in SPLITS:
        frame = splits[split]
        log.info("%s: %d raw %s pairs", cfg["name"], len(frame), split)
        origin = record["files"].get(split, record["files"])
        write_artifact(
            frame, outputs[split], "pairs", params=cfg, seed=seed, extra_metadata={"origin": origin}
        )
        record.setdefault("rows", {})[split] = len(frame)
    write_json(manifest, record)


def subsample_dataset(
    cfg: Mapping[str, Any], seed: int, inputs: Mapping[str, str], outputs: Mapping[str, str], summary: str
) -> None:
    """Clean the raw splits, take the seeded subsample of train/validation and the held-out test set."""
    from molmix.artifacts import read_artifact, write_artifact, write_json

    raw = {}
    counts: dict[str, Any] = {}
    for split in SPLITS:
        raw[split], counts[split] = clean_pairs(read_artifact(inputs[split], "pairs"), inputs[split])
    result = {
        split: subsample(raw[split], cfg["fraction"], seed, cfg["stratify"])
        for split in ("train", "validation")
    }
    seen = pd.concat([raw["train"], raw["validation"]], ignore_index=True)
    result["test"] = held_out_test(raw["test"], seen, cfg["test_size"], seed)
    for split, frame in result.items():
        counts[split]["selected"] = len(frame)
        if len(frame) == 0:
            raise DataError(f"{inputs[split]}: no usable pairs left for the {split} split")
        write_artifact(frame[PAIR_COLUMNS], outputs[split], "pairs", params=cfg, seed=seed)
    write_json(summary, counts)
