import html
import re

import pandas as pd
import pytest

from molmix.tables import (
    TableError,
    build_table,
    compare_with_published,
    describe_table,
    to_html,
    to_latex,
    to_markdown,
    write_tables,
)

CAP2MOL = {
    "meditron": {
        "bleu": 0.43,
        "levenshtein": 66.16,
        "maccs_fts": 0.35,
        "rdk_fts": 0.29,
        "morgan_fts": 0.19,
        "fcd": 13.64,
        "validity": 0.57,
    },
    "cpo": {
        "bleu": 0.71,
        "levenshtein": 42.65,
        "maccs_fts": 0.77,
        "rdk_fts": 0.70,
        "morgan_fts": 0.48,
        "fcd": 4.19,
        "validity": 1.00,
    },
    "kto": {
        "bleu": 0.23,
        "levenshtein": 294.63,
        "maccs_fts": 0.03,
        "rdk_fts": 0.03,
        "morgan_fts": 0.02,
        "fcd": 32.64,
        "validity": 0.06,
    },
}
SPEC = {
    "task": "cap2mol",
    "caption": "Table 3",
    "rows": [
        {"label": "Meditron", "system": "meditron"},
        {"label": "CPO", "system": "cpo"},
        {"label": "KTO", "system": "kto"},
    ],
    "deltas": [{"label": "Δ_CPOvsMED", "row": "CPO", "baseline": "Meditron"}],
}


def test_delta_rows_follow_the_papers_table_3():
    table = build_table(SPEC, CAP2MOL)
    assert table["system"].tolist() == ["Meditron", "CPO", "KTO", "Δ_CPOvsMED"]
    delta = table[table["kind"] == "delta"].iloc[0]
    assert delta["bleu"] == pytest.approx(28.0)  # points: 0.71 - 0.43
    assert delta["maccs_fts"] == pytest.approx(42.0)  # the paper prints +42%
    assert delta["fcd"] == pytest.approx(-9.45)  # metric units, as the paper's -9.45
    assert delta["levenshtein"] == pytest.approx(42.65 - 66.16)


def test_best_values_respect_metric_direction():
    markdown = to_markdown(build_table(SPEC, CAP2MOL), "cap2mol")
    cpo_line = next(line for line in markdown.splitlines() if "| CPO |" in line)
    assert "**42.65**" in cpo_line and "**4.19**" in cpo_line and "**1.00**" in cpo_line
    assert "Levenshtein ↓" in markdown and "BLEU ↑" in markdown
    assert "| Δ_CPOvsMED | +28% | -23.51 |" in markdown


def test_a_delta_that_rounds_to_zero_has_no_minus_sign():
    scores = {name: dict(values) for name, values in CAP2MOL.items()}
    scores["cpo"].update(bleu=0.426, fcd=13.6401)  # -0.4 points, -0.0001
    markdown = to_markdown(build_table(SPEC, scores), "cap2mol")
    assert "| Δ_CPOvsMED | +0% |" in markdown and "| +0.00 |" in markdown


def test_latex_is_booktabs_with_escaped_symbols():
    latex = to_latex(build_table(SPEC, CAP2MOL), "cap2mol", "Table 3")
    assert r"\toprule" in latex and r"\bottomrule" in latex and latex.count(r"\midrule") == 2
    assert r"$\Delta$\_CPOvsMED" in latex and r"+28\%" in latex and r"\textbf{4.19}" in latex


def test_missing_system_or_metric_is_a_clear_error():
    with pytest.raises(TableError, match="no scores for system 'kto'"):
        build_table(SPEC, {k: v for k, v in CAP2MOL.items() if k != "kto"})
    broken = {**CAP2MOL, "cpo": {k: v for k, v in CAP2MOL["cpo"].items() if k != "fcd"}}
    with pytest.raises(TableError, match=r"lack metric\(s\) \['fcd'\]"):
        build_table(SPEC, broken)
    bad_delta = {**SPEC, "deltas": [{"label": "Δ", "row": "SLERP+CPO", "baseline": "CPO"}]}
    with pytest.raises(TableError, match="'SLERP\\+CPO' is not a row"):
        build_table(bad_delta, CAP2MOL)


def test_published_comparison_and_files(tmp_path):
    spec = {**SPEC, "published": {"CPO": {"bleu": 0.71, "fcd": 4.19}}}
    comparison = compare_with_published(build_table(spec, CAP2MOL), "cap2mol", spec["published"])
    assert comparison["difference"].abs().max() == pytest.approx(0.0)
    write_tables({"table3": spec}, CAP2MOL, tmp_path, ["table3"])
    assert {p.name for p in tmp_path.iterdir()} == {
        "table3.md",
        "table3.tex",
        "table3.csv",
        "table3.html",
        "table3.published.md",
        "table3.published.html",
    }


def test_uncomputable_metric_is_shown_as_a_dash():
    scores = {**CAP2MOL, "kto": {**CAP2MOL["kto"], "fcd": None}}
    markdown = to_markdown(build_table(SPEC, scores), "cap2mol")
    kto_line = next(line for line in markdown.splitlines() if "| KTO |" in line)
    assert kto_line.split(" | ")[7] == "–"


def test_hidden_rows_serve_only_as_delta_baselines():
    spec = {**SPEC, "rows": [*SPEC["rows"][1:], {**SPEC["rows"][0], "show": False}]}
    table = build_table(spec, CAP2MOL)
    assert table["system"].tolist() == ["CPO", "KTO", "Δ_CPOvsMED"]
    assert table.iloc[-1]["bleu"] == pytest.approx(28.0)
    rows = describe_table(spec, CAP2MOL)[0]
    assert rows.endswith("CPO = cpo; KTO = kto. Δ baselines not shown as rows: Meditron = meditron.")


def test_alignment_summary_from_histories_and_scores(tmp_path):
    import json

    import pandas as pd

    from molmix.artifacts import write_artifact
    from molmix.tables import alignment_summary_step

    inputs = {}
    for system, losses, margins in (
        ("cap2mol+sft", [2.0, 1.8, 1.6, 1.2, 1.0, 0.8], None),
        ("slerp+dpo", [0.7, 0.6, 0.5, 0.3, 0.2, 0.1], [0.1, 0.5, 1.0, 2.0, 3.0, 4.5]),
    ):
        history = pd.DataFrame({"method": system.split("+")[1], "step": range(1, 7), "loss": losses})
        if margins:
            history["rewards/margins"] = margins
        inputs[f"history__{system}"] = tmp_path / f"{system}.parquet"
        write_artifact(history, inputs[f"history__{system}"], "training_log")
        for task, metric in (("mol2cap", {"bleu2": 0.5}), ("cap2mol", {"validity": 0.75})):
            inputs[f"{system}__{task}"] = tmp_path / f"{system}-{task}.json"
            inputs[f"{system}__{task}"].write_text(json.dumps(metric))
    table = alignment_summary_step(inputs, tmp_path / "alignment.md", tmp_path / "alignment.csv")
    dpo = table.set_index("system").loc["slerp+dpo"]
    assert (dpo["init"], dpo["method"], dpo["steps"]) == ("slerp", "dpo", 6)
    assert dpo["loss start"] == pytest.approx(0.6) and dpo["loss end"] == pytest.approx(0.2)
    assert dpo["reward margin end"] == 4.5 and dpo["BLEU-2 (Mol2Cap)"] == 0.5
    sft_line = next(
        line for line in (tmp_path / "alignment.md").read_text().splitlines() if "cap2mol+sft" in line
    )
    assert " – " in sft_line and "nan" not in sft_line  # SFT has no reward margin


FAILED = {
    "failed": "resources/models/AI4Chem--ChemLLM-7B-Chat: its model code is not part of transformers",
    "log": "logs/generate_responses/lpm24/kto.log",
    "n": 0,
    "task": "cap2mol",
}


def test_a_system_that_was_not_run_keeps_its_row_with_dashes_and_a_note(tmp_path):
    import json

    from molmix.tables import tables_step

    files = {}
    for system, summary in {**CAP2MOL, "kto": FAILED}.items():
        files[f"{system}__cap2mol"] = tmp_path / f"{system}.json"
        files[f"{system}__cap2mol"].write_text(json.dumps(summary))
    spec = {
        **SPEC,
        "deltas": [*SPEC["deltas"], {"label": "Δ_KTOvsMED", "row": "KTO", "baseline": "Meditron"}],
    }
    tables_step({"table3": spec}, files, tmp_path / "tables")
    markdown = (tmp_path / "tables/table3.md").read_text()
    lines = markdown.splitlines()
    row = next(line for line in lines if line.startswith("|  | KTO |"))
    assert row == "|  | KTO | " + " | ".join(["–"] * 7) + " |"
    assert next(line for line in lines if "| Δ_KTOvsMED |" in line).count("–") == 7
    assert "| Δ_CPOvsMED | +28% | -23.51 |" in markdown  # every other row is filled
    assert "| **0.71** | **42.65** |" in next(line for line in lines if "| CPO |" in line)
    note = f"- KTO (kto): not run — {FAILED['failed']}; see {FAILED['log']}"
    assert lines[-1] == note
    latex = (tmp_path / "tables/table3.tex").read_text()
    assert r"KTO (kto): not run — resources/models/AI4Chem-{}-ChemLLM-7B-Chat" in latex
    assert r"see logs/generate\_responses/lpm24/kto.log" in latex
    assert latex.index("not run") < latex.index(r"\caption")
    csv = (tmp_path / "tables/table3.csv").read_text().splitlines()
    assert next(line for line in csv if ",KTO," in line) == ",KTO,score" + "," * 7
    page = (tmp_path / "tables/table3.html").read_text()
    assert '<th scope="row">KTO</th>' + '<td class="number">–</td>' * 7 in page
    assert f"<li>{html.escape(note[2:])}</li>" in page  # the note under the table
    assert "n: not recorded in the score summaries." in page  # these summaries carry no n


def test_published_comparison_of_a_system_that_was_not_run_shows_dashes(tmp_path):
    spec = {**SPEC, "published": {"KTO": {"bleu": 0.23}, "CPO": {"bleu": 0.71}}}
    write_tables({"table3": spec}, {**CAP2MOL, "kto": FAILED}, tmp_path, ["table3"])
    published = (tmp_path / "table3.published.md").read_text()
    kto = next(line for line in published.splitlines() if "KTO" in line)
    assert "–" in kto and "nan" not in published and "0.230" in kto


def test_notes_in_latex_escape_every_special_character():
    from molmix.tables import latex_text

    assert latex_text(r"a_b 50% #1 $x$ {y} ~z ^w \ & org---name") == (
        r"a\_b 50\% \#1 \$x\$ \{y\} \textasciitilde{}z \textasciicircum{}w \textbackslash{} \& org-{}-{}-name"
    )


def _summaries(n=100, tokenizer="bert-base-uncased", task="cap2mol"):
    extra = (
        {"tokenizer": {"name": tokenizer}, "comparable_to_published": tokenizer != "bert-base-uncased"}
        if task == "mol2cap"
        else {"conventions": {"invalid_smiles_definition": "invalid predictions count as similarity 0"}}
    )
    return {name: {**values, "n": n, "model": name, **extra} for name, values in CAP2MOL.items()}


def test_html_table_has_a_caption_and_the_markdown_cells():
    scores = _summaries()
    page = to_html(build_table(SPEC, scores), "cap2mol", "Table 3", describe_table(SPEC, scores))
    table = page[page.index("<table>") : page.index("</table>")]
    caption = table[table.index("<caption>") : table.index("</caption>")]
    assert '<span class="title">Table 3</span>' in caption
    assert (
        "Rows: one per system (label = evaluated system): Meditron = meditron; CPO = cpo; KTO = kto."
        in caption
    )
    assert "Δ_CPOvsMED = CPO − Meditron" in caption and "percentage points for BLEU, MACCS FTS" in caption
    assert "own units for Levenshtein, FCD" in caption
    assert "n = 100 test items per system." in caption and "Tokenizer: none" in caption
    assert "Group" not in table  # no grouped rows: no group column
    cpo = re.search(r'<tr class="score"><th scope="row">CPO</th>(.*?)</tr>', table).group(1)
    assert "<strong>42.65</strong>" in cpo and "<strong>4.19</strong>" in cpo
    assert (
        '<tr class="delta first-delta"><th scope="row">Δ_CPOvsMED</th><td class="number">+28%</td>' in table
    )


def test_html_caption_names_the_tokenizer_actually_used_and_a_differing_n():
    spec = {**SPEC, "task": "mol2cap"}
    scores = _summaries(tokenizer="bert-base-uncased", task="mol2cap")
    scores["kto"] = {**scores["kto"], "n": 98}
    caption = " ".join(describe_table(spec, scores))
    assert "Tokenizer actually used for BLEU and METEOR: bert-base-uncased" in caption
    assert "stand-in for the official scorers' SciBERT tokenizer" in caption
    assert "n (test items) differs: 98 for kto; 100 for meditron, cpo." in caption
    scibert = _summaries(tokenizer="allenai/scibert_scivocab_uncased", task="mol2cap")
    assert "stand-in" not in " ".join(describe_table(spec, scibert))


def test_html_escapes_every_text_and_keeps_groups():
    scores = {**CAP2MOL, "<b>x</b>": CAP2MOL["cpo"]}
    spec = {
        **SPEC,
        "rows": [{"group": "TIES & co", "label": "<b>x</b>", "system": "<b>x</b>"}, *SPEC["rows"]],
    }
    page = to_html(build_table(spec, scores), "cap2mol", "A < B", describe_table(spec, scores), ["a & <i>"])
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<title>A &lt; B</title>" in page and "<td>TIES &amp; co</td>" in page
    assert '<th scope="col">Group</th>' in page and "<li>a &amp; &lt;i&gt;</li>" in page


def test_alignment_summary_html(tmp_path):
    import json

    from molmix.artifacts import write_artifact
    from molmix.tables import alignment_summary_step

    history = pd.DataFrame({"method": "cpo", "step": [1, 2, 3], "loss": [0.9, 0.7, 0.5]})
    write_artifact(history, tmp_path / "h.parquet", "training_log")
    inputs = {"history__slerp+cpo": tmp_path / "h.parquet"}
    for task, summary in {
        "mol2cap": {"bleu2": 0.5, "n": 7, "tokenizer": {"name": "bert-base-uncased"}},
        "cap2mol": {"validity": 0.75, "n": 7},
    }.items():
        inputs[f"slerp+cpo__{task}"] = tmp_path / f"{task}.json"
        inputs[f"slerp+cpo__{task}"].write_text(json.dumps(summary))
    alignment_summary_step(inputs, tmp_path / "a.md", tmp_path / "a.csv", tmp_path / "a.html")
    page = (tmp_path / "a.html").read_text()
    assert page.index("<table") < page.index("<caption>") < page.index("<thead>")
    assert "<td>slerp+cpo</td>" in page and "<td>–</td>" in page  # no reward margin logged
    assert "Mol2Cap n = 7 test items per system." in page and "bert-base-uncased" in page
