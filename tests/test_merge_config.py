"""Merge configuration: schema errors name the key, sweep names and per-merge params."""

import copy

import pytest
import yaml

from conftest import REPO
from molmix.config import ConfigError, validate_config
from molmix.merge import merge_specs

DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())
MINIMAL = {"seed": 1, "dataset": {}, "subsample": {}, "nli": {"enabled": False}}


def with_merge(**merge):
    config = copy.deepcopy(DEFAULT)
    config["merge"].update(merge)
    return config


@pytest.mark.parametrize(
    "merge, key",
    [
        ({"merges": {"dare": {"method": "dare_ties", "ratio": [1, 1]}}}, "merge.merges.dare.method"),
        (
            {"merges": {"ties": {"method": "ties", "ratio": [1, 18], "density": 1.5}}},
            "merge.merges.ties.density",
        ),
        (
            {"merges": {"ties": {"method": "ties", "ratio": [1, 18], "density": 0}}},
            "merge.merges.ties.density",
        ),
        ({"merges": {"slerp": {"method": "slerp", "ratio": [0, 18]}}}, "merge.merges.slerp.ratio.0"),
        ({"merges": {"slerp": {"method": "slerp", "ratio": [1, 2, 3]}}}, "merge.merges.slerp.ratio"),
        ({"merges": {"bad name": {"method": "slerp", "ratio": [1, 1]}}}, "merge.merges"),
        ({"ratio_sweep": {"method": "slerp", "ratios": [[1, 0]]}}, "merge.ratio_sweep.ratios.0.1"),
        ({"ratio_sweep": {"method": "spherical", "ratios": [[1, 1]]}}, "merge.ratio_sweep.method"),
    ],
)
def test_bad_merge_settings_fail_naming_the_key(merge, key):
    with pytest.raises(ConfigError) as error:
        validate_config(with_merge(**merge))
    assert f"  {key}: " in str(error.value)


def test_shipped_configs_give_every_merge_its_own_settings():
    for path in ("config.yaml", "configs/paper.yaml"):
        config = yaml.safe_load((REPO / path).read_text())
        validate_config(config)
        specs = merge_specs(config["merge"])
        assert {"slerp", "ties", "soup"} <= set(specs)
        assert specs["ties"] == {
            "method": "ties",
            "ratio": [1, 18],
            "density": 0.2,
            "normalize": True,
            "t": None,
        }
        sweep = config["merge"]["ratio_sweep"]
        for r1, r2 in sweep["ratios"]:
            assert specs[f"{sweep['method']}-{r1:g}to{r2:g}"]["ratio"] == [r1, r2]


def test_sweep_name_clashing_with_a_named_merge_is_refused():
    config = {
        **MINIMAL,
        "merge": {
            "merges": {"slerp-1to1": {"method": "linear", "ratio": [1, 1]}},
            "ratio_sweep": {"method": "slerp", "ratios": [[1, 1]]},
        },
    }
    with pytest.raises(ConfigError, match=r"merge.ratio_sweep.ratios.0: .*'slerp-1to1'"):
        validate_config(config)


@pytest.mark.parametrize(
    "change, key",
    [
        ({"merge": {"merges": {"mol2cap": {"method": "linear", "ratio": [1, 1]}}}}, "merge.merges.mol2cap"),
        ({"align": {"runs": [{"init": "slerpp", "methods": ["dpo"]}]}}, "align.runs.0.init"),
        ({"baselines": {"b": {"mol2cap": "pertask", "cap2mol": "./no/such model"}}}, "baselines.b.cap2mol"),
    ],
)
def test_unresolvable_names_are_refused_before_the_dag_is_built(change, key):
    with pytest.raises(ConfigError, match=f"^{key}: "):
        validate_config({**MINIMAL, **change})


def test_models_with_another_tokenizer_are_not_merged(tiny, tmp_path):
    import pandas as pd

    from conftest import PAIRS
    from molmix import lm
    from molmix.merge import check_compatible

    other = PAIRS.assign(
        caption=["Zinc ore.", "Quartz glass.", "Yttrium foil."], smiles=["[Zn]", "O=[Si]=O", "[Y]"]
    )
    lm.train_tokenizer(lm.corpus_texts(pd.concat([PAIRS, other])), 300, tmp_path / "tok")
    lm.load_causal_lm(tiny / "cap2mol").save_pretrained(tmp_path / "retokenized")
    lm.load_tokenizer(tmp_path / "tok").save_pretrained(tmp_path / "retokenized")
    check_compatible({"mol2cap": tiny / "mol2cap", "cap2mol": tiny / "cap2mol", "base": tiny / "base"})
    with pytest.raises(lm.ModelError, match="their tokenizers differ"):
        check_compatible({"mol2cap": tiny / "mol2cap", "cap2mol": tmp_path / "retokenized"})
