"""Statistics of a reference set, computed once and reused for every system scored against it.

For Mol2Cap: the references' WordPiece and ROUGE tokens. For Cap2Mol: the references' parsed
molecules as canonical SMILES, InChI, MACCS / RDK / Morgan fingerprints and ChemNet activations.
They depend only on the references and the metric settings, so they are stored under a key that
hashes both (plus the versions of the packages that shape them): the pipeline writes them with
the ``reference_statistics`` rule, the ``molmix score`` command keeps them in a cache folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from molmix.names import CAPTION_TASK, MOLECULE_TASK
from molmix.scoring import fcd as fcd_module
from molmix.scoring import molecules, text
from molmix.scoring.tokenizer import TextTokenizer

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SHAPING_PACKAGES = {
    CAPTION_TASK: ("tokenizers", "rouge-score"),
    MOLECULE_TASK: ("rdkit", "fcd-torch", "torch"),
}


@dataclass
class ReferenceStatistics:
    task: str
    key: str
    ids: list[str]
    references: list[str]
    tokens: list[list[str]] | None = None
    rouge_tokens: list[list[str]] | None = None
    canonical: list[str | None] | None = None
    inchi: list[str | None] | None = None
    fingerprints: dict[str, list] = field(default_factory=dict)
    activations: np.ndarray | None = None  # ChemNet rows of the valid references, in order

    @property
    def n(self) -> int:
        return len(self.references)


def statistics_key(task: str, ids, references, settings: dict) -> str:
    """Hash of the reference set, the settings that shape its statistics and package versions."""
    digest = hashlib.sha256()
    for value in (*ids, "\x1e", *references):
        digest.update(str(value).encode("utf-8", "surrogatepass") + b"\x1f")
    versions = {name: metadata.version(name) for name in SHAPING_PACKAGES[task]}
    blob = json.dumps(
        {"format": FORMAT_VERSION, "task": task, "settings": settings, "versions": versions}, sort_keys=True
    )
    digest.update(blob.encode())
    return digest.hexdigest()[:24]


def mismatch(stats: ReferenceStatistics, ids, references) -> str | None:
    """Why ``stats`` does not describe these references row by row, or None when it does.

    A key names the reference set, but a stored file can still have lost, gained or reordered rows:
    scored against it, per-item metrics would silently belong to other references.
    """
    ids, references = [str(i) for i in ids], [str(r) for r in references]
    if len(stats.ids) != len(ids) or stats.n != len(references):
        return f"{stats.n} rows, expected {len(references)}"
    for row, (stored_id, wanted_id, stored, wanted) in enumerate(
        zip(stats.ids, ids, stats.references, references, strict=True)
    ):
        if stored_id != wanted_id or str(stored) != wanted:
            return f"row {row} is id {stored_id!r}, expected {wanted_id!r} with its reference"
    if stats.activations is not None:
        valid = sum(c is not None for c in stats.canonical)
        if len(stats.activations) != valid:
            return f"{len(stats.activations)} ChemNet rows for {valid} valid references"
    return None


def statistics_settings(task: str, tokenizer: TextTokenizer | None, morgan_radius: int, fcd: bool) -> dict:
    """The settings a task's reference statistics depend on."""
    if task == CAPTION_TASK:
        return {"tokenizer_sha256": tokenizer.sha256, "max_tokens": tokenizer.max_tokens}
    settings = {"morgan_radius": morgan_radius, "fcd": fcd}
    if fcd:
        settings |= {"chemnet_sha256": fcd_module.model_sha256(), "pad_length": fcd_module.PAD_LENGTH}
    return settings


def compute_statistics(
    task: str, ids, references, key: str, tokenizer: TextTokenizer | None, morgan_radius: int, fcd: bool
) -> ReferenceStatistics:
    ids, references = [str(i) for i in ids], list(references)
    stats = ReferenceStatistics(task, key, ids, references)
    if task == CAPTION_TASK:
        stats.tokens = tokenizer.tokenize(references)
        stats.rouge_tokens = text.rouge_tokens(references)
        return stats
    mols = molecules.parse_smiles(references)
    invalid = sum(m is None for m in mols)
    if invalid:
        log.warning(
            "%d of %d reference SMILES are invalid; their items get no similarity", invalid, len(mols)
        )
    stats.canonical = molecules.canonical_smiles(mols)
    valid = [c for c in stats.canonical if c is not None]
    chemnet = (  # no torch without FCD
        fcd_module.CoreSharing(fcd_module.chemnet_activations, valid) if fcd else contextlib.nullcontext()
    )
    with chemnet as sharing:
        stats.inchi = molecules.inchis(mols)
        stats.fingerprints = molecules.fingerprints(mols, morgan_radius)
        stats.activations = sharing.result() if sharing is not None else None
    return stats


# ---- storage: one Parquet file (artifact kind "reference_statistics"), the key in its metadata


def to_frame(stats: ReferenceStatistics) -> pd.DataFrame:
    frame = pd.DataFrame({"id": stats.ids, "reference": stats.references})
    if stats.task == CAPTION_TASK:
        frame["tokens"] = stats.tokens
        frame["rouge_tokens"] = stats.rouge_tokens
        return frame
    frame["canonical"] = stats.canonical
    frame["inchi"] = stats.inchi
    for name, fps in stats.fingerprints.items():
        frame[f"fp_{name}"] = [fp.ToBinary() if fp is not None else None for fp in fps]
    if stats.activations is not None:
        rows = iter(stats.activations)
        frame["chemnet"] = [next(rows) if c is not None else None for c in stats.canonical]
    return frame


def from_frame(frame: pd.DataFrame, task: str, key: str) -> ReferenceStatistics:
    from rdkit import DataStructs

    stats = ReferenceStatistics(task, key, frame["id"].astype(str).tolist(), frame["reference"].tolist())
    if task == CAPTION_TASK:
        stats.tokens = [list(t) for t in frame["tokens"]]
        stats.rouge_tokens = [list(t) for t in frame["rouge_tokens"]]
        return stats
    stats.canonical = [c if isinstance(c, str) else None for c in frame["canonical"]]
    stats.inchi = [c if isinstance(c, str) else None for c in frame["inchi"]]
    vector = {"maccs": DataStructs.ExplicitBitVect, "rdk": DataStructs.ExplicitBitVect}
    for name in molecules.FINGERPRINTS:
        make = vector.get(name, DataStructs.ULongSparseIntVect)
        stats.fingerprints[name] = [make(b) if b is not None else None for b in frame[f"fp_{name}"]]
    if "chemnet" in frame:
        rows = [np.asarray(a, dtype=np.float32) for a in frame["chemnet"] if a is not None]
        stats.activations = np.stack(rows) if rows else np.zeros((0, 512), dtype=np.float32)
    return stats


def save_statistics(stats: ReferenceStatistics, path: str | Path) -> None:
    from molmix.artifacts import write_artifact

    write_artifact(
        to_frame(stats),
        path,
        "reference_statistics",
        extra_metadata={"task": stats.task, "key": stats.key, "format": FORMAT_VERSION},
    )


def load_statistics(path: str | Path) -> ReferenceStatistics:
    from molmix.artifacts import read_artifact, read_metadata

    meta = read_metadata(path)
    frame = read_artifact(path, "reference_statistics")
    return from_frame(frame, meta["task"], meta["key"])


def cached_statistics(cache_dir: str | Path | None, task: str, ids, references, key: str, **compute_args):
    """Statistics from ``cache_dir/<task>-<key>.parquet``, computed and stored there when absent."""
    path = Path(cache_dir) / f"{task}-{key}.parquet" if cache_dir else None
    if path is not None and path.exists():
        try:
            stats = load_statistics(path)
            problem = mismatch(stats, ids, references) if stats.key == key else f"key {stats.key}"
            if problem is None:
                log.info("reference statistics from cache %s", path)
                return stats
            log.warning(
                "recomputing cache entry %s: it does not describe these references (%s)", path, problem
            )
        except Exception as err:  # a corrupt cache entry is recomputed, never trusted
            log.warning("ignoring unreadable cache entry %s: %s", path, err)
    stats = compute_statistics(task, ids, references, key, **compute_args)
    if path is not None:
        save_statistics(stats, path)
        log.info("reference statistics cached in %s", path)
    return stats
