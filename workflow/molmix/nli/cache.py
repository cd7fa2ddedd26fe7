"""Append-only Parquet stores for decompositions and NLI pair probabilities.

A store is a folder of shards. Each :meth:`ParquetStore.add` writes one new shard under a unique
name through a temporary file renamed into place, so a job killed mid-write leaves at most a hidden
``.*.tmp`` file that readers ignore, never a damaged store; concurrent jobs (several systems scored
in parallel) never write the same file. Reading concatenates every shard; a key present twice keeps
its first value (equal keys always map to equal values).

Values computed in padded batches depend, in their last bits, on the batch they were computed in (the
demo NLI model's probabilities move by up to 2e-11 on CPU when the same pair is scored beside other
pairs): a value cached by one job and reused by another would make a job's output depend on which job
ran first. Such values are keyed by :func:`batch_plan` as well, so a value is reused only where the
same list of inputs goes through the same batching again (a rerun or a resumed job), and every output
is a function of its job's inputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from molmix.artifacts import atomic_path

log = logging.getLogger(__name__)


def text_hash(text: str) -> str:
    """sha256 of a text (UTF-8), the cache key of its decomposition."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def batch_plan(*parts: Any) -> str:
    """sha256 of what decides how values were batched: settings and the ordered list of inputs."""
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()


class ParquetStore:
    """Key columns -> value columns, persisted as append-only Parquet shards in ``directory``."""

    def __init__(self, directory: str | Path, keys: Sequence[str], values: Sequence[str]):
        self.directory = Path(directory)
        self.keys, self.values = tuple(keys), tuple(values)
        self._entries: dict[tuple, Any] | None = None

    def shards(self) -> list[Path]:
        return sorted(self.directory.glob("[!.]*.parquet")) if self.directory.exists() else []

    def _load(self) -> dict[tuple, Any]:
        if self._entries is None:
            entries: dict[tuple, Any] = {}
            for shard in self.shards():
                try:
                    table = pq.read_table(shard, columns=[*self.keys, *self.values])
                except (FileNotFoundError, pa.ArrowInvalid, OSError) as err:
                    log.warning("cache shard %s skipped: %s", shard, err)
                    continue
                columns = table.to_pydict()
                keys = zip(*(columns[k] for k in self.keys), strict=True)
                values = zip(*(columns[v] for v in self.values), strict=True)
                for key, value in zip(keys, values, strict=True):
                    entries.setdefault(key, value[0] if len(self.values) == 1 else value)
            self._entries = entries
            log.info("cache %s: %d entries in %d shards", self.directory, len(entries), len(self.shards()))
        return self._entries

    def __len__(self) -> int:
        return len(self._load())

    def lookup(self, keys: Iterable[tuple]) -> dict[tuple, Any]:
        """The cached value of each key present in the store."""
        entries = self._load()
        return {key: entries[key] for key in keys if key in entries}

    def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Persist new rows (mappings with every key and value column) as one new shard."""
        if not rows:
            return
        table = pa.Table.from_pylist([{c: row[c] for c in (*self.keys, *self.values)} for row in rows])
        with atomic_path(self.directory / f"{uuid.uuid4().hex}.parquet") as tmp:
            pq.write_table(table, tmp)
        entries = self._load()
        for row in rows:
            value = tuple(row[v] for v in self.values)
            entries.setdefault(tuple(row[k] for k in self.keys), value[0] if len(value) == 1 else value)
