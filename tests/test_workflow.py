"""The DAG: schema validation at parse time, dry runs of the shipped configs, the data stage."""

import re
import shutil

import pytest
import yaml

from conftest import REPO, run_snakemake
from fixtures import fixture_path
from molmix.artifacts import read_artifact


def test_default_config_dry_run_resolves(tmp_path):
    result = run_snakemake(tmp_path, "-n", "--quiet", "rules")
    assert "download_dataset" in result.stdout and "subsample_dataset" in result.stdout


def test_readme_dag_picture_shows_the_demo_rule_graph(tmp_path):
    """docs/rulegraph.svg (docs/layout.md) has exactly the rules of `snakemake --rulegraph`; re-draw it when this fails."""
    graph = run_snakemake(tmp_path, "--rulegraph").stdout
    rules = set(re.findall(r'label = "(\w+)"', graph))
    assert {"train_alignment", "score_nli", "make_tables"} <= rules
    assert set(re.findall(r">(\w+)</text>", (REPO / "docs/rulegraph.svg").read_text())) == rules


def test_paper_config_dry_run_resolves(tmp_path):
    result = run_snakemake(tmp_path, "-n", "--quiet", "rules", configfile=REPO / "configs/paper.yaml")
    assert "subsample_dataset" in result.stdout


def test_a_full_config_does_not_inherit_the_demo_config(tmp_path):
    """In the repository root, where the Snakefile's config.yaml exists, configs/paper.yaml alone plans
    the paper's merges, not also the demo's task_arithmetic (Snakemake merges config files recursively)."""
    shutil.copy(REPO / "config.yaml", tmp_path)
    paper = run_snakemake(tmp_path, "-n", configfile=REPO / "configs/paper.yaml").stdout
    assert "merge=slerp" in paper and "task_arithmetic" not in paper
    assert "task_arithmetic" in run_snakemake(tmp_path, "-n").stdout  # the demo's own, without --configfile


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"subsample.fraction": 1.5}, "fraction"),
        ({"dataset.source": "hub"}, "source"),
        ({"dataset.nmae": "x"}, "nmae"),
        ({"subsample.test_size": "many"}, "test_size"),
    ],
)
def test_bad_config_fails_the_dry_run_naming_the_key(tmp_path, write_config, overrides, key):
    result = run_snakemake(tmp_path, "-n", configfile=write_config(overrides), check=False)
    assert result.returncode != 0
    assert key in result.stdout + result.stderr


def test_semantic_config_check_names_the_key(tmp_path, write_config):
    config = write_config({"dataset.source": "chebi20", "dataset.name": "chebi20"})
    result = run_snakemake(tmp_path, "-n", configfile=config, check=False)
    assert result.returncode != 0 and "dataset.chebi20.train" in result.stdout + result.stderr


def test_chebi20_fixture_goes_through_the_data_stage(tmp_path, write_config):
    path = str(fixture_path("chebi20/validation.txt"))
    config = write_config(
        {
            "dataset.name": "chebi20",
            "dataset.source": "chebi20",
            "dataset.chebi20": {"train": path, "validation": path, "test": path},
            "subsample.test_size": 5,
            "nli.enabled": False,
        }
    )
    target = "results/data/chebi20/train.parquet"
    run_snakemake(tmp_path, target, configfile=config)
    train = read_artifact(tmp_path / target, "pairs")
    assert len(train) == 330
    manifest = (tmp_path / "resources/datasets/chebi20/raw/manifest.json").read_text()
    assert '"sha256"' in manifest


def test_shipped_chebi20_config_plans_every_stage(tmp_path):
    """configs/chebi20.yaml (on the embedded default) plans the whole DAG, NLI with a Hub model included."""
    layers = [REPO / "config.yaml", REPO / "configs/chebi20.yaml"]
    result = run_snakemake(tmp_path, "-n", "--quiet", "rules", configfile=layers)
    for rule in ("download_dataset", "train_alignment", "make_tables", "score_nli", "compare_nli_methods"):
        assert rule in result.stdout
    assert "train_nli_model" not in result.stdout


def test_the_demo_nli_model_is_refused_for_other_data(write_config):
    """It knows only the demo's facts: once planned for ChEBI-20, it failed after every model had run."""
    from molmix.config import ConfigError, load_config

    chebi20 = {"train": "t.txt", "validation": "v.txt", "test": "t.txt"}
    with pytest.raises(
        ConfigError, match="nli.model.source: 'train'.*dataset.source 'chebi20'.*nli.enabled: false"
    ):
        load_config(write_config({"dataset.source": "chebi20", "dataset.chebi20": chebi20}))
    load_config(write_config({"dataset.source": "chebi20", "dataset.chebi20": chebi20, "nli.enabled": False}))


def test_without_nli_scores_tables_and_figures_are_still_planned(tmp_path, write_config):
    config = write_config({"nli.enabled": False, "nli.compare.preferred": "not-checked-without-nli"})
    result = run_snakemake(tmp_path, "-n", "--quiet", "rules", configfile=config)
    assert (
        "make_tables" in result.stdout
        and "make_figures" in result.stdout
        and "score_responses" in result.stdout
    )
    for rule in ("train_nli_model", "decompose_captions", "score_nli", "compare_nli_methods"):
        assert rule not in result.stdout


def test_lint_is_clean():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--cores", "1", "--workflow-profile", "none"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_data_stage_is_byte_identical_across_runs(tmp_path, write_config):
    config = write_config({"dataset.demo.n_molecules": 300, "subsample.test_size": 20})
    outputs = []
    for run in ("first", "second"):
        workdir = tmp_path / run
        run_snakemake(workdir, "results/data/demo/test.parquet", configfile=config)
        outputs.append(
            {s: (workdir / f"results/data/demo/{s}.parquet").read_bytes() for s in ("train", "test")}
        )
    assert outputs[0] == outputs[1]


def test_params_do_not_depend_on_key_order_or_written_out_defaults(tmp_path):
    """Snakemake's params trigger compares printed params, so the validated config must be the same
    whether keys come in another order or defaults are written out (else everything re-runs)."""
    from molmix.config import load_config

    def reversed_keys(value):
        if isinstance(value, dict):
            return {key: reversed_keys(value[key]) for key in reversed(list(value))}
        return [reversed_keys(item) for item in value] if isinstance(value, list) else value

    original = load_config(REPO / "config.yaml")
    rewritten = tmp_path / "rewritten.yaml"
    rewritten.write_text(yaml.safe_dump(reversed_keys(original), sort_keys=False, allow_unicode=True))
    assert repr(load_config(rewritten)) == repr(original)


def test_nf64_typo_of_the_paper_is_rejected_pointing_to_nf4(write_config):
    from molmix.config import ConfigError, load_config

    with pytest.raises(ConfigError) as error:
        load_config(write_config({"align.quantization.bnb_4bit_quant_type": "nf64"}))
    message = str(error.value)
    assert "align.quantization.bnb_4bit_quant_type: 'nf64' is not one of ['nf4', 'fp4']" in message
    assert "use nf4" in message


def test_zero_in_a_mixing_ratio_fails_at_parse_time(tmp_path, write_config):
    config = write_config({"merge.ratio_sweep": {"method": "slerp", "ratios": [[0, 1]]}})
    result = run_snakemake(tmp_path, "-n", configfile=config, check=False)
    assert result.returncode != 0 and "ratios" in result.stdout + result.stderr


HOSTILE_NAMES = [".", "..", ".hidden", "-rf", "_reference", "a/b", "x" * 101]


def _set_dataset_name(config, name):
    config["dataset"]["name"] = name


def _add_merge(config, name):
    config["merge"]["merges"][name] = {"method": "linear", "ratio": [1, 1]}


def _add_baseline(config, name):
    config["baselines"][name] = {"mol2cap": "pertask", "cap2mol": "pertask"}


def _add_run(config, name):
    config["align"]["runs"].append({"init": name, "methods": ["cpo"]})


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize(
    "key, place",
    [
        ("dataset.name", _set_dataset_name),
        ("merge.merges", _add_merge),
        ("baselines", _add_baseline),
        ("align.runs", _add_run),
    ],
)
def test_a_name_that_is_not_a_plain_path_component_is_refused(tmp_path, key, place, name):
    """Names become folders under results/: '..' once made merge_models delete every model folder."""
    from molmix.config import ConfigError, load_config

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    place(config, name)
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert key in str(error.value)


def test_numbers_can_be_overridden_on_the_command_line(tmp_path):
    """`--config` passes nested values as strings; the schema's types still apply to them."""
    result = run_snakemake(tmp_path, "-n", "--config", "subsample={fraction: 0.2, stratify: false}")
    assert result.returncode == 0
    refused = run_snakemake(tmp_path, "-n", "--config", "subsample={fraction: lots}", check=False)
    assert (
        refused.returncode != 0
        and "subsample.fraction: 'lots' is not of type 'number'" in refused.stdout + refused.stderr
    )


@pytest.mark.parametrize(
    "overrides, messages",
    [
        (
            {"align.runs": []},
            ["nli.compare.preferred: 'slerp+cpo' is not an evaluated system", "align.runs is empty"],
        ),
        (
            {"nli.compare.systems": ["pertask", "nope"]},
            ["nli.compare.systems.1: 'nope' is not an evaluated system"],
        ),
        ({"tables.table2.rows": [{"label": "X", "system": "nope"}]}, ["tables.table2.rows.0.system: 'nope'"]),
    ],
)
def test_tables_and_nli_may_only_name_evaluated_systems(write_config, overrides, messages):
    """Refused when validated, not by make_tables after every model has run."""
    from molmix.config import ConfigError, load_config

    with pytest.raises(ConfigError) as error:
        load_config(write_config(overrides))
    assert all(message in str(error.value) for message in messages), error.value
