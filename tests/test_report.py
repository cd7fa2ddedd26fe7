"""Snakemake's HTML report shows every result table as an HTML table with its own caption, grouped and
labelled, under a landing page that states the experiment.

The report is built by ``snakemake --report`` on the real Snakefile from a small finished run: the
tables written by the table steps themselves (molmix.tables, as rules/tables.smk runs them) from
score summaries and training histories shaped as the scoring and alignment stages write them, and a
placeholder for every other output the Snakefile puts in the report (figures, NLI summaries). No model
is trained, so it takes seconds; tests/test_pipeline.py builds the report of a real tiny run.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from jinja2 import Environment

from conftest import REPO, planned_workflow, run_snakemake

TINY = REPO / "tests/config/tiny.yaml"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
TOKENIZER = "bert-base-uncased"
N = 12


def _summary(system: str, task: str) -> dict:
    """A score summary as the scoring stage writes it (molmix.scoring.core), with made-up values."""
    from molmix.tables import METRICS

    summary = {m.key: 0.5 for m in METRICS[task]} | {"n": N, "task": task, "model": system, "notes": []}
    if task == "mol2cap":
        summary |= {
            "tokenizer": {"name": TOKENIZER, "vocab_size": 30522},
            "tokenizer_fallback": None,
            "comparable_to_published": False,
        }
    else:
        summary |= {"levenshtein": 20.0, "fcd": 3.5, "conventions": {"invalid_smiles_definition": "zero"}}
    return summary


def _report_outputs(configfile: Path, workdir: Path) -> list[tuple[str, str, object]]:
    """(rule, path, report flag) of every output the Snakefile puts in the report."""
    from snakemake.io import get_flag_value, is_flagged

    cwd = os.getcwd()
    try:
        with planned_workflow(configfile, workdir) as workflow:
            return [
                (rule.name, str(f), get_flag_value(f, "report"))
                for rule in workflow.rules
                for f in rule.output
                if is_flagged(f, "report")
            ]
    finally:
        os.chdir(cwd)  # the API works in workdir


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A work folder with the tables written by molmix.tables and every other reported output present."""
    from molmix.artifacts import write_artifact
    from molmix.config import validate_config
    from molmix.layout import Experiment
    from molmix.tables import alignment_summary_step, tables_step

    workdir = tmp_path_factory.mktemp("report")
    config = yaml.safe_load(TINY.read_text())
    config["tables"]["table2"]["published"] = {"CPO": {"bleu2": 0.61, "meteor": 0.7}}
    configfile = tmp_path_factory.mktemp("config") / "tiny-published.yaml"
    configfile.write_text(yaml.safe_dump(config, allow_unicode=True))
    validate_config(config)
    experiment = Experiment(config)
    dataset = experiment.dataset

    inputs = {**experiment.table_score_files(), **experiment.alignment_summary_inputs()}
    for key, path in inputs.items():
        target = workdir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if key.startswith("history__"):
            method = key.rsplit("+", 1)[1]
            history = pd.DataFrame({"method": method, "step": [1, 2, 3], "loss": [0.9, 0.7, 0.5]})
            write_artifact(history, target, "training_log")
        else:
            system, task = key.rsplit("__", 1)
            target.write_text(json.dumps(_summary(system, task)))
    absolute = {key: str(workdir / path) for key, path in inputs.items()}
    tables = workdir / f"results/tables/{dataset}"
    tables_step(config["tables"], {k: absolute[k] for k in experiment.table_score_files()}, tables)
    alignment = {k: absolute[k] for k in experiment.alignment_summary_inputs()}
    alignment_summary_step(
        alignment, tables / "alignment.md", tables / "alignment.csv", tables / "alignment.html"
    )

    for rule, pattern, flag in _report_outputs(configfile, workdir):
        path = workdir / re.sub(r"\{dataset[^}]*\}", dataset, pattern)
        assert "{" not in str(path), f"{rule}: reported output {pattern} has other wildcards"
        if path.exists():
            continue
        if flag.patterns:  # a directory: one file per pattern
            path.mkdir(parents=True, exist_ok=True)
            for name in flag.patterns:
                (path / name.format(name=f"placeholder_{rule}")).write_bytes(PNG)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"placeholder of {rule}\n")
    run_snakemake(workdir, "--report", "report.html", configfile=configfile)
    return workdir, config


def _embedded(report: str, name: str) -> str:
    """The JSON of script variable ``name`` of the report page (``<script id=...>var name = ...;``)."""
    match = re.search(rf'<script id="[\w-]+">\s*var {name} = (.*?);\n\s*</script>', report, re.S)
    assert match, f"the report has no {name}"
    return match.group(1)


def _decoded(data_uri: str) -> str:
    return base64.b64decode(data_uri.split(";base64,", 1)[1]).decode("utf-8")


def test_every_table_is_an_html_table_with_its_own_caption(finished_run):
    workdir, config = finished_run
    report = (workdir / "report.html").read_text()
    results = json.loads(_embedded(report, "results"))
    for name, spec in config["tables"].items():
        entry = results[f"results/tables/demo/{name}.html"]
        assert entry["mime_type"] == "text/html"  # shown inline, not offered as a download
        page = _decoded(entry["data_uri"])
        table = page[page.index("<table>") : page.index("</table>")]
        caption = table[table.index("<caption>") : table.index("</caption>")]
        assert spec["caption"] in caption
        assert "Rows: " in caption and "Columns: " in caption
        assert f"n = {N} test items per system" in caption
        assert "percentage points" in caption  # Δ's unit
        if spec["task"] == "mol2cap":
            assert f"Tokenizer actually used for BLEU and METEOR: {TOKENIZER}" in caption
            assert "stand-in" in caption
        else:
            assert "Tokenizer: none" in caption
        shown = [row["label"] for row in spec["rows"] if row.get("show", True)]
        deltas = [delta["label"] for delta in spec["deltas"]]
        assert re.findall(r'<th scope="row">(.*?)</th>', table) == shown + deltas
        assert table.count("<tr") == 1 + len(shown) + len(deltas)
    alignment = _decoded(results["results/tables/demo/alignment.html"]["data_uri"])
    assert "<caption>" in alignment and "<td>cap2mol+sft</td>" in alignment
    assert "n = 12 test items per system" in alignment and TOKENIZER in alignment
    published = _decoded(results["results/tables/demo/table2.published.html"]["data_uri"])
    assert "this run next to the published values" in published and "<caption>" in published
    assert "<td>CPO</td>" in published and "<td>BLEU-2</td>" in published and "0.610" in published
    assert not any(path.endswith(".md") and "/tables/" in path for path in results)


def test_tables_and_figures_are_grouped_and_labelled(finished_run):
    workdir, _ = finished_run
    report = (workdir / "report.html").read_text()
    categories = json.loads(_embedded(report, "categories"))
    assert categories["Tables"] == {
        "Mol2Cap (molecule → caption)": [
            "results/tables/demo/table2.html",
            "results/tables/demo/table2.published.html",
            "results/tables/demo/table4.html",
        ],
        "Cap2Mol (caption → molecule)": [
            "results/tables/demo/table3.html",
            "results/tables/demo/table5.html",
        ],
        "Alignment runs": ["results/tables/demo/alignment.html"],
    }
    results = json.loads(_embedded(report, "results"))
    assert results["results/tables/demo/table2.published.html"]["labels"] == {
        "table": "Table 2 vs paper",
        "shows": "this run next to the published values",
    }
    assert results["results/tables/demo/table3.html"]["labels"] == {
        "table": "Table 3",
        "shows": "alignment from the crossmodal (Cap2Mol) initialisation, molecule generation",
    }
    assert "Other figures" in categories["Figures"]  # the placeholder; known figures have their stage
    # each kind of table has its own report caption
    assert (
        results["results/tables/demo/table2.html"]["caption"]
        != results["results/tables/demo/alignment.html"]["caption"]
    )


def test_the_landing_page_states_the_experiment_and_links_every_table(finished_run):
    workdir, config = finished_run
    report = (workdir / "report.html").read_text()
    landing = json.loads(_embedded(report, "workflow_desc"))
    assert '<tt class="docutils literal">demo</tt>, a <strong>stand-in</strong> for L+M-24' in landing
    assert f"{config['subsample']['test_size']} unseen test pairs" in landing
    assert "stand-in</strong> for\nMeditron-7B" in landing and "stand-in</strong> for SciBERT" in landing
    for name in [*config["tables"], "alignment"]:
        assert f"javascript:app.showResultInfo('results/tables/demo/{name}.html')" in landing


LANDING_FILES = [{"target": "table2.html", "labels": {"table": "Table 2", "shows": "x"}}]


@pytest.mark.parametrize(
    "layers",
    [
        ["config.yaml"],
        ["configs/paper.yaml"],
        ["configs/paper.yaml", "configs/author-code.yaml"],
        ["config.yaml", "configs/chebi20.yaml"],
    ],
    ids=lambda layers: "+".join(Path(p).stem for p in layers),
)
def test_the_landing_page_renders_for_every_shipped_config(layers):
    """workflow.rst as Snakemake renders it (Jinja with trim_blocks, then docutils) for each config,
    layered as ``--configfile`` layers them (configs/rehearsal.yaml has paper.yaml's shape, and its model
    folders exist only after ``make rehearsal``)."""
    from docutils.core import publish_parts
    from snakemake.utils import update_config

    from molmix.config import validate_config

    config = {}
    for layer in layers:
        update_config(config, yaml.safe_load((REPO / layer).read_text()))
    validate_config(config)

    class Snakemake:
        pass

    Snakemake.config = config
    category = type("Category", (), {"name": "Tables"})()
    text = (REPO / "workflow/report/workflow.rst").read_text() + "\n.. _Tables: #\n.. _table2.html: #\n"
    rendered = (
        Environment(trim_blocks=True, lstrip_blocks=True)
        .from_string(text)
        .render(snakemake=Snakemake, categories={category: {}}, files=LANDING_FILES)
    )
    body = publish_parts(rendered, writer="html", settings_overrides={"report_level": 2})["html_body"]
    assert "System Message" not in body, body
    assert config["dataset"]["name"] in body
    if config["models"]["base"]["source"] == "hub":
        assert config["models"]["base"]["id"] in body
