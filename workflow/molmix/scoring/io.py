"""Readers for the scorer's inputs: MolT5-format TSV files and ``generations`` Parquet artifacts.

Every reader returns a frame with ``id``, ``reference``, ``prediction`` and ``model`` columns.
Missing predictions (NaN/None in Parquet) become empty strings, which every metric scores as a
failed output; a missing reference is an error naming the file and row, as is a malformed line.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pandas as pd

from molmix.names import CAPTION_TASK, MOLECULE_TASK, check_task

log = logging.getLogger(__name__)

TSV_INPUT_COLUMN = {CAPTION_TASK: "SMILES", MOLECULE_TASK: "description"}


class ScoringInputError(ValueError):
    """An input file that cannot be scored; the message names the file (and row or column)."""


def read_molt5_tsv(path: str | Path, task: str | None = None) -> tuple[pd.DataFrame, str]:
    """(items, task) of a MolT5 TSV: ``SMILES|description <TAB> ground truth <TAB> output``.

    Read as the official scripts read it (``csv`` with tab delimiter and no quoting); the task
    follows from the first column's name when not given.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = reader.fieldnames or []
            inferred = next((t for t, col in TSV_INPUT_COLUMN.items() if col in header), None)
            task = check_task(task) if task else inferred
            needed = [TSV_INPUT_COLUMN[task] if task else "SMILES|description", "ground truth", "output"]
            missing = [c for c in needed if c not in header]
            if missing:
                raise ScoringInputError(
                    f"{path}: not a MolT5-format TSV for {task or 'either task'}: header {header} lacks "
                    f"{missing} (expected 'SMILES|description<TAB>ground truth<TAB>output')"
                )
            rows = []
            for line_number, row in enumerate(reader, start=2):
                if None in row or any(v is None for v in row.values()):
                    raise ScoringInputError(
                        f"{path}, line {line_number}: expected {len(header)} tab-separated fields"
                    )
                rows.append(
                    (str(line_number - 2), row[TSV_INPUT_COLUMN[task]], row["ground truth"], row["output"])
                )
    except UnicodeDecodeError as err:
        raise ScoringInputError(f"{path}: not UTF-8 text ({err})") from err
    except FileNotFoundError:
        raise ScoringInputError(f"{path}: no such file") from None
    except OSError as err:  # a folder, no permission
        raise ScoringInputError(f"{path}: cannot be read as a MolT5-format TSV ({err.strerror})") from None
    if not rows:
        raise ScoringInputError(f"{path}: no rows to score")
    frame = pd.DataFrame(rows, columns=["id", "input", "reference", "prediction"])
    frame["model"] = path.stem
    return frame, task


def read_generations(path: str | Path, task: str | None = None) -> tuple[pd.DataFrame, str]:
    """(items, task) of a ``generations`` artifact; rows of other tasks are an error."""
    from molmix.artifacts import ArtifactError, read_artifact

    path = Path(path)
    try:
        frame = read_artifact(path, "generations")
    except ArtifactError as err:
        raise ScoringInputError(str(err)) from err
    if frame.empty:
        raise ScoringInputError(f"{path}: no rows to score")
    tasks = sorted(frame["task"].dropna().unique())
    task = check_task(task) if task else (tasks[0] if len(tasks) == 1 else None)
    if task is None or tasks != [task]:
        raise ScoringInputError(f"{path}: holds tasks {tasks}, expected only {task or 'one task'}")
    if frame["id"].isna().any() or frame["id"].duplicated().any():
        raise ScoringInputError(f"{path}: ids must be present and unique")
    bad = frame.index[frame["reference"].isna()]
    if len(bad):
        raise ScoringInputError(f"{path}: row {int(bad[0])} (id {frame['id'][bad[0]]!r}) has no reference")
    missing = int(frame["prediction"].isna().sum())
    if missing:
        log.warning("%s: %d missing predictions scored as empty outputs", path, missing)
    frame["prediction"] = frame["prediction"].fillna("").astype(str)
    frame["model"] = frame["model"].fillna(path.parent.name)
    return frame[["id", "input", "reference", "prediction", "model"]].reset_index(drop=True), task


def read_items(path: str | Path, task: str | None = None) -> tuple[pd.DataFrame, str]:
    """A generations Parquet (by suffix) or a MolT5-format TSV."""
    items, task = (
        read_generations(path, task) if Path(path).suffix == ".parquet" else read_molt5_tsv(path, task)
    )
    refuse_nul_bytes(items, ["reference", "prediction"], path)
    if task == CAPTION_TASK:
        refuse_overlong_captions(items, ["reference", "prediction"], path)
    return items, task


# Longer captions are refused (ROUGE-L's longest common subsequence and atomic NLI's pair matrix grow
# with the square of their length); ChEBI-20's longest is far shorter, a generation of 512 tokens too.
MAX_CAPTION_CHARACTERS = 20_000


def refuse_overlong_captions(frame: pd.DataFrame, columns: list[str], path) -> None:
    for column in columns:
        bad = frame.index[frame[column].astype(str).str.len() > MAX_CAPTION_CHARACTERS]
        if len(bad):
            row = int(bad[0])
            raise ScoringInputError(
                f"{path}: row {row} (id {frame['id'][row]!r}): its {column} is longer than "
                f"{MAX_CAPTION_CHARACTERS:,} characters"
            )


def refuse_nul_bytes(frame: pd.DataFrame, columns: list[str], path) -> None:
    """A NUL byte marks a damaged file: RDKit would silently parse the SMILES up to it."""
    for column in columns:
        bad = frame.index[frame[column].astype(str).str.contains("\x00", regex=False)]
        if len(bad):
            row = int(bad[0])
            raise ScoringInputError(
                f"{path}: row {row} (id {frame['id'][row]!r}) has a NUL byte in its {column}"
            )


def read_references(path: str | Path, task: str) -> pd.DataFrame:
    """``id`` and ``reference`` from a test split (``pairs`` Parquet), a generations Parquet or a TSV."""
    from molmix.artifacts import ArtifactError, read_artifact, read_metadata

    path = Path(path)
    if path.suffix != ".parquet":
        return read_molt5_tsv(path, task)[0][["id", "reference"]]
    try:
        kind = read_metadata(path).get("artifact", "pairs")
        frame = read_artifact(path, "generations" if kind == "generations" else "pairs")
    except ArtifactError as err:
        raise ScoringInputError(str(err)) from err
    if "reference" not in frame:
        frame["reference"] = frame["caption" if task == CAPTION_TASK else "smiles"]
    frame = frame[["id", "reference"]].reset_index(drop=True)
    refuse_nul_bytes(frame, ["reference"], path)
    return frame


def align_references(
    items: pd.DataFrame, items_path, references: pd.DataFrame, references_path
) -> pd.DataFrame:
    """``items`` in the order of ``references``, which must hold the same ids and reference texts.

    Files without ids (TSV) are aligned by row; a count mismatch names both files.
    """
    where = f"{items_path} ({len(items)} rows) and {references_path} ({len(references)} rows)"
    if len(items) != len(references):
        raise ScoringInputError(f"predictions and references differ in row count: {where}")
    if set(items["id"]) == set(references["id"]):
        items = items.set_index("id").loc[references["id"]].reset_index()
    elif not Path(items_path).suffix == ".parquet" or not Path(references_path).suffix == ".parquet":
        items = items.assign(id=references["id"].to_numpy())
    else:
        extra = sorted(set(items["id"]) - set(references["id"]))[:3]
        raise ScoringInputError(f"predictions and references hold different ids (e.g. {extra}): {where}")
    differs = items["reference"].to_numpy() != references["reference"].to_numpy()
    if differs.any():
        row = int(differs.argmax())
        raise ScoringInputError(
            f"reference of id {references['id'][row]!r} differs between {items_path} and {references_path}"
        )
    return items
