"""Parquet artifacts passed between pipeline steps: schemas, validated reads, atomic writes.

Every artifact kind names its required columns and their Arrow types. Extra columns are allowed
(a step may carry more), missing or mistyped required ones are an error that names the file and
the column. Writes go to a temporary file in the target directory and are renamed into place, so
a killed job never leaves a half-written file under the final name. Each file carries provenance
metadata (artifact kind, hash of the producing step's configuration, seed, package versions) and
nothing time-dependent, so identical inputs give byte-identical files. Steps that read from the
Hugging Face Hub add where their input came from: the raw splits their origin (file, sha256, Hub
commit), the atoms their decomposer model's download record (:func:`model_origin`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

METADATA_KEY = b"molmix"

STRING = pa.string()
FLOAT = pa.float64()
INT = pa.int64()
BOOL = pa.bool_()

# kind -> required columns and their Arrow types
SCHEMAS: dict[str, dict[str, pa.DataType]] = {
    # molecule-caption pairs of one split (download and subsample stages)
    "pairs": {"id": STRING, "smiles": STRING, "caption": STRING, "category": STRING},
    # preference pairs from the negatives stage
    "negatives": {
        "id": STRING,
        "task": STRING,
        "prompt": STRING,
        "chosen": STRING,
        "rejected": STRING,
        "negative_model": STRING,
    },
    # model outputs on the held-out test set
    "generations": {
        "id": STRING,
        "task": STRING,
        "input": STRING,
        "reference": STRING,
        "prediction": STRING,
        "model": STRING,
    },
    # per-step training log of an alignment run (TRL's log_history)
    "training_log": {"method": STRING, "step": INT},
    # per-item metric scores of one model on one task (scoring stage; metric columns per task)
    "scores": {
        "id": STRING,
        "task": STRING,
        "model": STRING,
        "reference": STRING,
        "prediction": STRING,
    },
    # statistics of a test set's references shared by every scored system (scoring stage)
    "reference_statistics": {"id": STRING, "reference": STRING},
    # atomic facts of each caption (NLI stage: decompose_references / decompose_captions); truncated =
    # the decomposer's answer was cut off at nli.decomposer.max_new_tokens (its last facts may be missing)
    "atoms": {"id": STRING, "text": STRING, "atoms": pa.list_(STRING), "truncated": BOOL},
    # per-item hallucination and coverage of one NLI method (atomic, full, sentence) on one system
    "nli_scores": {
        "id": STRING,
        "model": STRING,
        "method": STRING,
        "reference": STRING,
        "prediction": STRING,
        "hallucination": FLOAT,
        "unsupported": FLOAT,
        "coverage": FLOAT,
    },
}

PROVENANCE_PACKAGES = (
    "molmix",
    "pandas",
    "pyarrow",
    "rdkit",
    "torch",
    "transformers",
    "trl",
    "peft",
    "mergekit",
)


DOWNLOAD_RECORD = "molmix-download.json"
"""File in each model folder fetched from the Hub: repository id, the revision asked for, the commit fetched."""


class ArtifactError(ValueError):
    """An artifact is missing, unreadable or does not match its schema."""


def config_hash(params: Any) -> str:
    """Stable short hash of a JSON-serialisable configuration (key order does not matter)."""
    blob = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape artifact contents."""
    versions = {}
    for name in PROVENANCE_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def model_origin(model_dir: str | os.PathLike | None) -> dict[str, Any] | None:
    """Where a model folder came from: its download record (``repo_id``, ``revision`` asked for,
    ``commit`` fetched), or ``None`` for a folder the pipeline built or the user supplied."""
    if model_dir is None:
        return None
    record = Path(model_dir) / DOWNLOAD_RECORD
    if not record.is_file():
        return None
    try:
        origin = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ArtifactError(f"{record}: unreadable download record ({err})") from err
    if not isinstance(origin, dict) or "repo_id" not in origin:
        raise ArtifactError(f"{record}: download record without a repo_id")
    return origin


def provenance(params: Any = None, seed: int | None = None, **extra: Any) -> dict[str, Any]:
    """Provenance record stored in an artifact's metadata."""
    return {
        "config_hash": config_hash(params if params is not None else {}),
        "seed": seed,
        "versions": package_versions(),
        **extra,
    }


def _schema_for(kind: str) -> dict[str, pa.DataType]:
    try:
        return SCHEMAS[kind]
    except KeyError:
        raise ArtifactError(f"unknown artifact kind {kind!r}; known: {sorted(SCHEMAS)}") from None


def _compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    if actual.equals(expected):
        return True
    if pa.types.is_null(actual):  # an all-null column written from an empty frame
        return True
    if pa.types.is_large_string(actual) and pa.types.is_string(expected):
        return True
    if pa.types.is_integer(actual) and pa.types.is_floating(expected):
        return True
    if pa.types.is_list(expected) and (pa.types.is_list(actual) or pa.types.is_large_list(actual)):
        return _compatible(actual.value_type, expected.value_type)
    return False


def validate_table(table: pa.Table, kind: str, source: str | os.PathLike) -> None:
    """Raise ArtifactError naming ``source`` and the column if ``table`` does not fit ``kind``."""
    for column, expected in _schema_for(kind).items():
        if column not in table.column_names:
            raise ArtifactError(
                f"{source}: missing column {column!r} required by artifact {kind!r} "
                f"(has {table.column_names})"
            )
        actual = table.schema.field(column).type
        if not _compatible(actual, expected):
            raise ArtifactError(
                f"{source}: column {column!r} has type {actual}, artifact {kind!r} needs {expected}"
            )


def to_table(df: pd.DataFrame, kind: str) -> pa.Table:
    """Convert a frame to Arrow with the kind's types for its required columns."""
    schema = _schema_for(kind)
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise ArtifactError(f"artifact {kind!r}: frame lacks required columns {missing}")
    fields = []
    for column in df.columns:
        if column in schema:
            fields.append(pa.field(column, schema[column]))
        else:
            fields.append(pa.field(column, pa.Schema.from_pandas(df[[column]], preserve_index=False)[0].type))
    return pa.Table.from_pandas(df, schema=pa.schema(fields), preserve_index=False)


def _umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from the user's group
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; move it onto ``path`` only if the block succeeds.

    Used for ``save_pretrained`` folders: a model directory either is complete or does not exist.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        # mkdtemp's 0700, and the 0600 some writers (safetensors) give files, as for atomic_path
        mask = _umask()
        for folder, _, files in os.walk(tmp):
            os.chmod(folder, 0o777 & ~mask)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o666 & ~mask)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically, keys sorted so equal content gives equal bytes."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_artifact(
    df: pd.DataFrame,
    path: str | os.PathLike,
    kind: str,
    *,
    params: Any = None,
    seed: int | None = None,
    extra_metadata: Mapping[str, Any] | None = None,
) -> None:
    """Validate ``df`` against ``kind`` and write it atomically with provenance metadata."""
    table = to_table(df, kind)
    validate_table(table, kind, path)
    record = {"artifact": kind, **provenance(params, seed), **(extra_metadata or {})}
    meta = dict(table.schema.metadata or {})
    meta.pop(b"pandas", None)
    meta[METADATA_KEY] = json.dumps(record, sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_artifact(path: str | os.PathLike, kind: str) -> pd.DataFrame:
    """Read a Parquet artifact, validating its required columns and types."""
    source = Path(path)
    if not source.exists():
        raise ArtifactError(f"{source}: artifact {kind!r} does not exist")
    try:
        table = pq.read_table(source)
    except (pa.ArrowInvalid, OSError) as err:
        raise ArtifactError(f"{source}: not a readable Parquet file ({err})") from err
    validate_table(table, kind, source)
    return table.to_pandas()


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance record of an artifact (empty if it has none)."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowInvalid, OSError) as err:
        raise ArtifactError(f"{path}: not a readable Parquet file ({err})") from err
    raw = meta.get(METADATA_KEY)
    return json.loads(raw) if raw else {}
