import os
import stat

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from molmix.artifacts import (
    ArtifactError,
    atomic_directory,
    read_artifact,
    read_metadata,
    write_artifact,
    write_json,
)


def pairs(n=3):
    return pd.DataFrame(
        {
            "id": [f"m{i}" for i in range(n)],
            "smiles": ["C#N", "CCO", "c1ccccc1"][:n],
            "caption": ["a", "b", "c"][:n],
            "category": [None, "x", "y"][:n],
        }
    )


def test_roundtrip_keeps_values_and_records_provenance(tmp_path):
    path = tmp_path / "out" / "train.parquet"
    write_artifact(pairs(), path, "pairs", params={"fraction": 0.1}, seed=7)
    back = read_artifact(path, "pairs")
    assert back["smiles"].tolist() == ["C#N", "CCO", "c1ccccc1"]
    meta = read_metadata(path)
    assert meta["artifact"] == "pairs" and meta["seed"] == 7
    assert len(meta["config_hash"]) == 16 and "pandas" in meta["versions"]


def test_same_input_gives_identical_bytes(tmp_path):
    write_artifact(pairs(), tmp_path / "a.parquet", "pairs", params={"k": 1}, seed=1)
    write_artifact(pairs(), tmp_path / "b.parquet", "pairs", params={"k": 1}, seed=1)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": ["a"], "smiles": ["C"], "category": ["x"]}), path)
    with pytest.raises(ArtifactError, match=r"bad\.parquet: missing column 'caption'"):
        read_artifact(path, "pairs")


def test_wrong_type_names_the_column(tmp_path):
    path = tmp_path / "typed.parquet"
    pq.write_table(pa.table({"id": [1], "smiles": ["C"], "caption": ["x"], "category": ["x"]}), path)
    with pytest.raises(ArtifactError, match=r"column 'id' has type int64"):
        read_artifact(path, "pairs")


def test_unreadable_file_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(ArtifactError, match="junk.parquet: not a readable Parquet file"):
        read_artifact(path, "pairs")


def test_failed_write_keeps_previous_file(tmp_path):
    path = tmp_path / "train.parquet"
    write_artifact(pairs(), path, "pairs")
    before = path.read_bytes()
    with pytest.raises(ArtifactError):
        write_artifact(pairs().drop(columns="caption"), path, "pairs")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["train.parquet"]


def test_atomic_directory_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "weights.bin").write_text("partial")
        raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_directory(target) as tmp:
        (tmp / "weights.bin").write_text("complete")
    assert (target / "weights.bin").read_text() == "complete"


@pytest.mark.parametrize("umask, file_mode, folder_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_outputs_follow_the_users_umask(tmp_path, umask, file_mode, folder_mode):
    """A group sharing a results folder must be able to read it (temporary files are created 0600)."""
    previous = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        write_artifact(pairs(), tmp_path / "p.parquet", "pairs")
        with atomic_directory(tmp_path / "model") as folder:
            (folder / "config.json").write_text("{}")
            os.close(
                os.open(folder / "model.safetensors", os.O_CREAT | os.O_WRONLY, 0o600)
            )  # as safetensors does
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "p.parquet").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == folder_mode
    assert stat.S_IMODE((tmp_path / "model/config.json").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "model/model.safetensors").stat().st_mode) == file_mode
