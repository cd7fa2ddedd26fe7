import pandas as pd
import pytest

from fixtures import fixture_path
from molmix.artifacts import read_artifact, write_artifact
from molmix.data import (
    DataError,
    allocate,
    clean_pairs,
    held_out_test,
    read_chebi20,
    read_table,
    subsample,
    subsample_dataset,
)
from molmix.demo_data import build_demo_dataset, caption, molecule_facts


def frame(n, categories=None):
    return pd.DataFrame(
        {
            "id": [f"id{i}" for i in range(n)],
            "smiles": ["C" * (1 + i % 5) for i in range(n)],
            "caption": [f"caption {i}" for i in range(n)],
            "category": categories if categories is not None else [None] * n,
        }
    )


def test_allocate_is_proportional_and_exact():
    assert allocate({"a": 70, "b": 20, "c": 10}, 10) == {"a": 7, "b": 2, "c": 1}
    counts = allocate({"a": 5, "b": 5, "c": 5}, 4)
    assert sum(counts.values()) == 4 and max(counts.values()) - min(counts.values()) <= 1


def test_subsample_is_stratified():
    data = frame(1000, ["big"] * 800 + ["small"] * 200)
    sample = subsample(data, 0.1, seed=3)
    assert len(sample) == 100
    assert sample["category"].value_counts().to_dict() == {"big": 80, "small": 20}


def test_subsample_is_deterministic_and_seed_dependent():
    data = frame(500, ["a", "b"] * 250)
    assert subsample(data, 0.1, seed=1).equals(subsample(data, 0.1, seed=1))
    assert set(subsample(data, 0.1, seed=1)["id"]) != set(subsample(data, 0.1, seed=2)["id"])


def test_subsample_does_not_depend_on_row_order():
    data = frame(300, ["a", "b", "c"] * 100)
    shuffled = data.sample(frac=1, random_state=0).reset_index(drop=True)
    assert set(subsample(data, 0.2, seed=5)["id"]) == set(subsample(shuffled, 0.2, seed=5)["id"])


def test_subsample_without_categories_uses_plain_sampling():
    sample = subsample(frame(50), 0.2, seed=0)
    assert len(sample) == 10


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5])
def test_fraction_outside_unit_interval_is_rejected(fraction):
    with pytest.raises(DataError, match="fraction must be in"):
        subsample(frame(10), fraction, seed=0)


def test_clean_pairs_drops_and_counts_invalid_smiles_and_empty_captions():
    data = frame(4)
    data.loc[1, "smiles"] = "C1CC"  # unclosed ring
    data.loc[2, "caption"] = "  "
    data.loc[3, "smiles"] = ""
    kept, counts = clean_pairs(data, "input.parquet")
    assert kept["id"].tolist() == ["id0"]
    assert counts == {"rows": 4, "empty_text": 2, "invalid_smiles": 1, "kept": 1}


def test_duplicate_ids_are_an_error_naming_the_id():
    data = frame(3)
    data.loc[2, "id"] = "id0"
    with pytest.raises(DataError, match=r"data.parquet: duplicate id 'id0' \(row 2\)"):
        clean_pairs(data, "data.parquet")


def test_test_set_excludes_seen_molecules_and_keeps_first_caption():
    seen = pd.DataFrame({"id": ["s"], "smiles": ["OCC"], "caption": ["x"], "category": [None]})
    pool = pd.DataFrame(
        {
            "id": ["p0", "p1", "p2", "p3"],
            "smiles": ["CCO", "c1ccccc1", "C1=CC=CC=C1", "CC"],
            "caption": ["ethanol (seen)", "benzene first", "benzene second", "ethane"],
            "category": [None] * 4,
        }
    )
    test = held_out_test(pool, seen, size=10, seed=0)
    assert test["caption"].tolist() == ["benzene first", "ethane"]


def test_chebi20_fixture_parses_and_keeps_backslashes():
    path = fixture_path("chebi20/validation.txt")
    data = read_chebi20(path)
    assert len(data) == 3301 and data["id"].str.startswith("chebi-").all()
    raw_smiles = [line.split("\t")[1] for line in path.read_text().splitlines()[1:]]
    assert data["smiles"].tolist() == raw_smiles  # never rewritten
    assert data["smiles"].str.contains("\\\\", regex=False).sum() > 0
    kept, counts = clean_pairs(data, str(path))
    assert counts["kept"] + counts["invalid_smiles"] + counts["empty_text"] == 3301


def test_chebi20_bad_header_and_bad_bytes(tmp_path):
    bad_header = tmp_path / "h.txt"
    bad_header.write_text("id\tsmiles\tcaption\n1\tC\tx\n")
    with pytest.raises(DataError, match="h.txt: header is"):
        read_chebi20(bad_header)
    bad_bytes = tmp_path / "b.txt"
    bad_bytes.write_bytes(b"CID\tSMILES\tdescription\n1\tC\tok\n2\tCC\t\xff\xfe\n")
    with pytest.raises(DataError, match="b.txt: line 3 is not valid UTF-8"):
        read_chebi20(bad_bytes)
    empty = tmp_path / "e.txt"
    empty.write_text("")
    with pytest.raises(DataError, match="e.txt: file is empty"):
        read_chebi20(empty)


def test_table_source_requires_columns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("smiles,text\nC,x\n")
    with pytest.raises(DataError, match=r"t.csv: missing column\(s\) \['caption'\]"):
        read_table(path)


def test_demo_dataset_is_deterministic_with_unseen_test_molecules():
    first = build_demo_dataset(60, 2, 60, seed=1)
    assert first.equals(build_demo_dataset(60, 2, 60, seed=1))
    assert set(first["split"]) == {"train", "validation", "test"}
    train = set(first.loc[first["split"] == "train", "smiles"])
    assert not train & set(first.loc[first["split"] == "test", "smiles"])
    assert first["caption"].str.startswith(("The molecule is", "It ")).all()
    # two captions of one molecule state the same facts in different words or orders
    assert (first.groupby("smiles")["caption"].nunique() > 1).any()


def test_demo_captions_state_every_fact():
    import random

    from rdkit import Chem

    facts = molecule_facts(Chem.MolFromSmiles("OC(=O)c1ccccc1O"))  # salicylic acid
    names = {f.value for f in facts}
    assert {"phenol", "carboxylic acid", "small", "monocyclic", "aromatic"} <= names
    text = caption(facts, random.Random(0))
    for fact in facts:
        clause = fact.clause.split(" ", 1)[1] if fact.clause.startswith(("a ", "an ")) else fact.clause
        assert clause in text


def test_subsample_step_writes_validated_splits(tmp_path):
    data = build_demo_dataset(200, 1, 60, seed=0)
    inputs = {}
    for split in ("train", "validation", "test"):
        inputs[split] = tmp_path / f"raw-{split}.parquet"
        write_artifact(data[data["split"] == split].drop(columns="split"), inputs[split], "pairs")
    outputs = {s: tmp_path / f"{s}.parquet" for s in inputs}
    cfg = {"fraction": 0.1, "stratify": True, "test_size": 10}
    subsample_dataset(cfg, 0, inputs, outputs, tmp_path / "summary.json")
    assert len(read_artifact(outputs["train"], "pairs")) == 14
    assert len(read_artifact(outputs["test"], "pairs")) == 10


def lpm24_config(local_dirs=None):
    return {
        "name": "lpm24",
        "source": "lpm24",
        "lpm24": {
            "train_repo": "language-plus-molecules/LPM-24_train",
            "test_repo": "language-plus-molecules/LPM-24_train-extra",
            "local_dirs": local_dirs or {},
        },
    }


def test_lpm24_reads_local_snapshots_through_the_hub_code_path(tmp_path):
    from molmix.data import load_source

    dirs = {}
    for repo, rows in (
        ("language-plus-molecules/LPM-24_train", 4),
        ("language-plus-molecules/LPM-24_train-extra", 3),
    ):
        root = tmp_path / repo.split("/")[1]
        (root / "data").mkdir(parents=True)
        for split in ("split_train", "split_valid"):
            frame = pd.DataFrame(
                {"molecule": ["CCO"] * rows, "caption": [f"{split} {i}" for i in range(rows)]}
            )
            frame.to_parquet(root / "data" / f"{split}-00000-of-00001.parquet")
        dirs[repo] = str(root)
    splits, manifest = load_source(lpm24_config(dirs), 0, tmp_path)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [4, 4, 3]
    assert splits["validation"]["caption"].iloc[0] == "split_valid 0"
    assert manifest["files"]["test"]["repo"] == "language-plus-molecules/LPM-24_train-extra"


def test_lpm24_offline_fails_with_one_line_saying_what_to_do(tmp_path, monkeypatch):
    from molmix.data import load_source

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(DataError) as error:
        load_source(lpm24_config(), 0, tmp_path)
    message = str(error.value)
    assert "\n" not in message and "LPM-24_train" in message and "local_dirs" in message
