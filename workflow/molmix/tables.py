"""The paper's result tables (Tables 2-5) from corpus-level score summaries.

A table is configuration: a task, a list of rows (a label and the evaluated model that fills it,
optionally grouped, e.g. TIES / SLERP), and Δ rows comparing two labelled rows. Scores come from the
scoring stage's JSON summaries. Δ follows the paper: the absolute difference ``row - baseline``,
in percentage points for metrics bounded in [0, 1] and in the metric's own units for Levenshtein
and FCD (e.g. Table 3, Δ_CPOvsMED: 0.71 - 0.43 BLEU is "+29%", 4.19 - 13.64 FCD is "-9.45").

A system that was not run (its score summary says ``failed``: the model could not be loaded) keeps
its row with "–" in every metric, as does every Δ row involving it, and the table's note names it,
the reason and the log of the failed job (:func:`failure_notes`).

Each table is written as Markdown (the README's excerpt), LaTeX, CSV and HTML: Snakemake's report
shows HTML files inline but offers Markdown only as a download, so the HTML is the table the report
shows, with a ``<caption>`` saying what its rows and columns are, n, the tokenizer and Δ's unit
(:func:`describe_table`).
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from molmix.names import CAPTION_TASK, MOLECULE_TASK, TASKS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Metric:
    key: str  # key in the scoring summary JSON
    label: str
    higher_is_better: bool
    bounded: bool = True  # in [0, 1]: Δ shown in percentage points

    @property
    def header(self) -> str:
        return f"{self.label} {'↑' if self.higher_is_better else '↓'}"


METRICS = {
    CAPTION_TASK: [
        Metric("bleu2", "BLEU-2", True),
        Metric("bleu4", "BLEU-4", True),
        Metric("rouge1", "ROUGE-1", True),
        Metric("rouge2", "ROUGE-2", True),
        Metric("rougeL", "ROUGE-L", True),
        Metric("meteor", "METEOR", True),
    ],
    MOLECULE_TASK: [
        Metric("bleu", "BLEU", True),
        Metric("levenshtein", "Levenshtein", False, bounded=False),
        Metric("maccs_fts", "MACCS FTS", True),
        Metric("rdk_fts", "RDK FTS", True),
        Metric("morgan_fts", "Morgan FTS", True),
        Metric("fcd", "FCD", False, bounded=False),
        Metric("validity", "Validity", True),
    ],
}


class TableError(ValueError):
    """A table specification that does not match the available scores."""


def delta(metric: Metric, value: float, baseline: float) -> float:
    """The paper's Δ: absolute difference, in points (x100) for [0, 1] metrics."""
    difference = value - baseline
    return difference * 100 if metric.bounded else difference


def failure_notes(spec: Mapping[str, Any], scores: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per row of ``spec`` whose system was not run: label, system, reason and log."""
    notes = []
    for row in spec["rows"]:
        summary = scores.get(row["system"]) or {}
        if summary.get("failed"):
            see = f"; see {summary['log']}" if summary.get("log") else ""
            notes.append(f"{row['label']} ({row['system']}): not run — {summary['failed']}{see}")
    return notes


def build_table(spec: Mapping[str, Any], scores: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One table as a frame: a row per system (group, label), a column per metric, then Δ rows.

    ``spec``: {task, rows: [{label, system, group?, show?}], deltas: [{label, row, baseline}]}. A row
    with ``show: false`` is not printed but can be a Δ baseline (the paper's Table 4 compares with
    Table 2's DPO and CPO rows). A system whose summary says ``failed`` gets NaN ("–") everywhere.
    """
    metrics = METRICS[spec["task"]]
    records = []
    values: dict[str, dict[str, float]] = {}
    for row in spec["rows"]:
        summary = scores.get(row["system"])
        if summary is None:
            raise TableError(f"table row {row['label']!r}: no scores for system {row['system']!r}")
        if summary.get("failed"):
            summary = dict.fromkeys((m.key for m in metrics), None)
        missing = [m.key for m in metrics if m.key not in summary]
        if missing:
            raise TableError(f"scores of system {row['system']!r} lack metric(s) {missing}")
        # a metric that could not be computed (e.g. FCD with too few valid molecules) is null: shown as "–"
        values[row["label"]] = {
            m.key: math.nan if summary[m.key] is None else float(summary[m.key]) for m in metrics
        }
        if row.get("show", True):
            records.append(
                {
                    "group": row.get("group", ""),
                    "system": row["label"],
                    "kind": "score",
                    **values[row["label"]],
                }
            )
    for comparison in spec.get("deltas", []):
        for side in ("row", "baseline"):
            if comparison[side] not in values:
                raise TableError(
                    f"Δ {comparison['label']!r}: {side} {comparison[side]!r} is not a row of the table"
                )
        row, base = values[comparison["row"]], values[comparison["baseline"]]
        records.append(
            {
                "group": "",
                "system": comparison["label"],
                "kind": "delta",
                **{m.key: delta(m, row[m.key], base[m.key]) for m in metrics},
            }
        )
    return pd.DataFrame.from_records(records, columns=["group", "system", "kind", *[m.key for m in metrics]])


def best_rows(table: pd.DataFrame, task: str) -> dict[str, set[int]]:
    """Indices of the best score row(s) per metric (ties all marked; NaN never best)."""
    scores = table[table["kind"] == "score"]
    best = {}
    for metric in METRICS[task]:
        column = scores[metric.key].dropna()
        if column.empty:
            best[metric.key] = set()
            continue
        target = column.max() if metric.higher_is_better else column.min()
        best[metric.key] = set(column.index[column == target])
    return best


def _format(value: float, metric: Metric, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "delta":  # rounded first, so that -0.4 points reads "+0%", not "-0%"
        return f"{round(value):+d}%" if metric.bounded else f"{round(value, 2) + 0.0:+.2f}"
    return f"{value:.2f}"


def _cells(table: pd.DataFrame, task: str, bold: str) -> list[list[str]]:
    best = best_rows(table, task)
    rows = []
    for index, record in table.iterrows():
        cells = [record["group"], record["system"]]
        for metric in METRICS[task]:
            text = _format(record[metric.key], metric, record["kind"])
            if index in best[metric.key]:
                text = bold.format(text)
            cells.append(text)
        rows.append(cells)
    return rows


def to_markdown(table: pd.DataFrame, task: str, notes: Sequence[str] = ()) -> str:
    """A pipe table; best values in bold; ``notes`` (lines) below it."""
    headers = ["", "Method", *[m.header for m in METRICS[task]]]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _cells(table, task, "**{}**")]
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"


LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_text(text: str) -> str:
    """Free text (a note: paths, error messages) with every LaTeX special character escaped; "--" in
    a path stays two hyphens, not an en dash."""
    escaped = "".join(LATEX_SPECIALS.get(char, char) for char in text)
    return re.sub(r"-(?=-)", "-{}", escaped)


def to_latex(table: pd.DataFrame, task: str, caption: str, notes: Sequence[str] = ()) -> str:
    """A booktabs table; best values in bold, Δ rows after a midrule, ``notes`` under the tabular."""
    metrics = METRICS[task]
    escape = {"%": r"\%", "Δ": r"$\Delta$", "_": r"\_", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "&": r"\&"}

    def tex(text: str) -> str:
        for old, new in escape.items():
            text = text.replace(old, new)
        return text

    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{ll" + "r" * len(metrics) + "}",
        r"\toprule",
        " & ".join(["", "Method", *[tex(m.header) for m in metrics]]) + r" \\",
        r"\midrule",
    ]
    first_delta = True
    for record, cells in zip(table.to_dict("records"), _cells(table, task, r"\textbf{{{}}}"), strict=True):
        if record["kind"] == "delta" and first_delta:
            lines.append(r"\midrule")
            first_delta = False
        lines.append(
            " & ".join(tex(c) if not c.startswith(r"\textbf") else c.replace("%", r"\%") for c in cells)
            + r" \\"
        )
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [r"\par\smallskip{\footnotesize " + latex_text(note) + "}" for note in notes]
    lines += [rf"\caption{{{tex(caption)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


TASK_NAMES = {
    CAPTION_TASK: "Mol2Cap (molecule → caption)",
    MOLECULE_TASK: "Cap2Mol (caption → molecule)",
}


def _test_items(scored: Sequence[Mapping[str, Any]]) -> str:
    """The n sentence of a caption: one n for every system, or each distinct n with its systems."""
    counts: dict[int, list[str]] = {}
    for summary in scored:
        if summary.get("n") is not None:
            counts.setdefault(int(summary["n"]), []).append(str(summary.get("model", "?")))
    if not counts:
        return "n: not recorded in the score summaries."
    if len(counts) == 1:
        return f"n = {next(iter(counts))} test items per system."
    return (
        "n (test items) differs: "
        + "; ".join(f"{n} for {', '.join(systems)}" for n, systems in sorted(counts.items()))
        + "."
    )


def _tokenizers(task: str, scored: Sequence[Mapping[str, Any]]) -> str:
    """Which tokenizer the metrics of ``task`` used, as the score summaries record it."""
    if task == MOLECULE_TASK:
        conventions = sorted(
            {
                s["conventions"]["invalid_smiles_definition"]
                for s in scored
                if s.get("conventions", {}).get("invalid_smiles_definition")
            }
        )
        text = "Tokenizer: none; BLEU and Levenshtein compare SMILES strings character by character."
        if conventions:
            text += f" Fingerprint similarities: {'; '.join(conventions)}."
        return text
    names = sorted({s["tokenizer"]["name"] for s in scored if s.get("tokenizer")})
    if not names:
        return "Tokenizer: not recorded in the score summaries."
    text = (
        f"Tokenizer actually used for BLEU and METEOR: {', '.join(names)} (WordPiece); "
        "ROUGE uses rouge-score's own tokenizer."
    )
    fallbacks = sorted({str(s["tokenizer_fallback"]) for s in scored if s.get("tokenizer_fallback")})
    if fallbacks:
        text += f" Fallback used because: {'; '.join(fallbacks)}."
    if any(s.get("comparable_to_published") is False for s in scored):
        text += (
            " It is a stand-in for the official scorers' SciBERT tokenizer: BLEU and METEOR are not"
            " comparable to published numbers."
        )
    return text


def describe_table(spec: Mapping[str, Any], scores: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The sentences of a table's caption: rows, columns, Δ and its unit, n and the tokenizer."""
    task = spec["task"]
    metrics = METRICS[task]
    shown = "; ".join(f"{row['label']} = {row['system']}" for row in spec["rows"] if row.get("show", True))
    hidden = "; ".join(
        f"{row['label']} = {row['system']}" for row in spec["rows"] if not row.get("show", True)
    )
    lines = [
        f"Rows: one per system (label = evaluated system): {shown}."
        + (f" Δ baselines not shown as rows: {hidden}." if hidden else ""),
        f"Columns: {TASK_NAMES.get(task, task)} metrics on the test set, corpus level; "
        "↑ higher is better, ↓ lower is better; the best score per column is in bold; "
        "– = not computed or the system was not run.",
    ]
    deltas = spec.get("deltas", [])
    if deltas:
        points = ", ".join(m.label for m in metrics if m.bounded)
        units = ", ".join(m.label for m in metrics if not m.bounded)
        definitions = "; ".join(f"{d['label']} = {d['row']} − {d['baseline']}" for d in deltas)
        lines.append(
            f"Δ rows: absolute differences, row − baseline ({definitions}), in percentage points for "
            f"{points} (written +N% as in the paper, i.e. points, not a relative change)"
            + (f" and in the metric's own units for {units}." if units else ".")
        )
    used = [
        scores[row["system"]]
        for row in spec["rows"]
        if row["system"] in scores and not scores[row["system"]].get("failed")
    ]
    lines += [_test_items(used), _tokenizers(task, used)]
    return lines


HTML_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1em; }
table { border-collapse: collapse; font-size: 0.95em; }
caption { caption-side: top; text-align: left; max-width: 60em; padding-bottom: 0.6em; }
caption .title { font-weight: bold; font-size: 1.1em; display: block; margin-bottom: 0.3em; }
caption p { margin: 0.15em 0; font-size: 0.9em; color: #333; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; }
thead th { border-bottom: 2px solid #333; text-align: center; white-space: nowrap; }
tbody th { text-align: left; font-weight: normal; }
td.number { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.first-delta td, tr.first-delta th { border-top: 2px solid #333; }
tr.delta td, tr.delta th { font-style: italic; }
ul.notes { font-size: 0.9em; max-width: 60em; }
"""


def html_document(title: str, body: str) -> str:
    """A standalone UTF-8 page (the report shows it in a frame of its own)."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{HTML_STYLE}</style>\n</head>\n<body>\n"
        f"{body}</body>\n</html>\n"
    )


def _html_caption(title: str, description: Sequence[str]) -> str:
    lines = [f'<span class="title">{html.escape(title)}</span>']
    lines += [f"<p>{html.escape(line)}</p>" for line in description]
    return "<caption>\n" + "\n".join(lines) + "\n</caption>\n"


def _html_notes(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    return '<ul class="notes">\n' + "".join(f"<li>{html.escape(n)}</li>\n" for n in notes) + "</ul>\n"


def to_html(
    table: pd.DataFrame,
    task: str,
    caption: str,
    description: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> str:
    """A standalone HTML page: the table with a ``<caption>`` (``caption`` as its title, then the
    ``description`` sentences), best values in ``<strong>``, Δ rows after a rule, ``notes`` below.
    The cells are the Markdown table's; every text is escaped."""
    metrics = METRICS[task]
    best = best_rows(table, task)
    grouped = bool(table["group"].astype(bool).any())  # a group column only where rows are grouped
    headers = [*(["Group"] if grouped else []), "Method", *[m.header for m in metrics]]
    parts = ["<table>\n", _html_caption(caption, description), "<thead>\n<tr>"]
    parts += [f'<th scope="col">{html.escape(h)}</th>' for h in headers]
    parts.append("</tr>\n</thead>\n<tbody>\n")
    first_delta = True
    for index, record in table.iterrows():
        kind = record["kind"]
        if kind == "delta" and first_delta:
            kind, first_delta = "delta first-delta", False
        cells = [f"<td>{html.escape(record['group'])}</td>"] if grouped else []
        cells.append(f'<th scope="row">{html.escape(record["system"])}</th>')
        for metric in metrics:
            text = html.escape(_format(record[metric.key], metric, record["kind"]))
            if index in best[metric.key]:
                text = f"<strong>{text}</strong>"
            cells.append(f'<td class="number">{text}</td>')
        parts.append(f'<tr class="{kind}">' + "".join(cells) + "</tr>\n")
    parts.append("</tbody>\n</table>\n")
    parts.append(_html_notes(notes))
    return html_document(caption, "".join(parts))


def frame_to_html(
    frame: pd.DataFrame, caption: str, description: Sequence[str] = (), float_format: str = "{:.3f}"
) -> str:
    """Any frame as a standalone HTML page with a ``<caption>``; NaN shown as "–", text escaped."""
    return frames_to_html(caption, [(frame, caption, description)], float_format)


def frames_to_html(
    title: str,
    sections: Sequence[tuple[pd.DataFrame, str, Sequence[str]]],
    float_format: str = "{:.3f}",
) -> str:
    """Several frames, each with its caption and description, as one standalone HTML page."""
    bodies = []
    for frame, caption, description in sections:
        body = frame.to_html(
            index=False,
            na_rep="–",
            float_format=float_format.format,
            escape=True,
            border=0,
            classes=None,
        )
        bodies.append(
            re.sub(
                r"(<table[^>]*>\n)",
                lambda m, c=caption, d=description: m.group(1) + _html_caption(c, d),
                body,
                count=1,
            )
        )
    return html_document(title, "\n<br>\n".join(bodies) + "\n")


def compare_with_published(
    table: pd.DataFrame, task: str, published: Mapping[str, Mapping[str, float]]
) -> pd.DataFrame:
    """Ours next to the paper's reported values, per system and metric, with the difference."""
    records = []
    for record in table[table["kind"] == "score"].to_dict("records"):
        reported = published.get(record["system"])
        if not reported:
            continue
        for metric in METRICS[task]:
            if metric.key in reported:
                ours, theirs = record[metric.key], float(reported[metric.key])
                records.append(
                    {
                        "system": record["system"],
                        "metric": metric.label,
                        "ours": ours,
                        "published": theirs,
                        "difference": ours - theirs,
                    }
                )
    return pd.DataFrame.from_records(records, columns=["system", "metric", "ours", "published", "difference"])


def write_tables(
    specs: Mapping[str, Mapping[str, Any]],
    scores: Mapping[str, Mapping[str, Any]],
    out_dir: str | Path,
    names: Sequence[str],
) -> dict[str, pd.DataFrame]:
    """Write Markdown, LaTeX and CSV (and the published comparison, if given) for each named table."""
    from molmix.artifacts import write_text

    out = Path(out_dir)
    built = {}
    for name in names:
        spec = specs[name]
        table = build_table(spec, scores)
        notes = failure_notes(spec, scores)
        for note in notes:
            log.warning("%s: %s", name, note)
        task = spec["task"]
        caption = spec.get("caption", name)
        write_text(out / f"{name}.md", f"{caption}\n\n" + to_markdown(table, task, notes))
        write_text(out / f"{name}.tex", to_latex(table, task, caption, notes))
        write_text(out / f"{name}.csv", table.to_csv(index=False))
        write_text(out / f"{name}.html", to_html(table, task, caption, describe_table(spec, scores), notes))
        if spec.get("published"):
            comparison = compare_with_published(table, task, spec["published"])
            write_text(
                out / f"{name}.published.md",
                _missing_as_dash(comparison).to_markdown(index=False, floatfmt=".3f", missingval="–") + "\n",
            )
            write_text(
                out / f"{name}.published.html",
                frame_to_html(
                    comparison,
                    f"{caption}: this run next to the published values",
                    [
                        "Rows: one per system and metric the paper reports a value for.",
                        "Columns: ours = this run; published = the paper's value; difference = ours − "
                        "published, in the metric's own units (fractions for metrics in [0, 1], "
                        "not percentage points).",
                        *describe_table(spec, scores)[-2:],  # n and the tokenizer
                    ],
                ),
            )
        built[name] = table
    return built


def _missing_as_dash(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with NaN as None, which tabulate's ``missingval`` replaces (it leaves NaN as "nan")."""
    return frame.astype(object).where(frame.notna(), None)


def tables_step(
    specs: Mapping[str, Mapping[str, Any]], score_files: Mapping[str, str], out_dir: str | Path
) -> None:
    """The make_tables step: ``score_files`` maps ``<system>__<task>`` to scoring summaries."""
    by_task: dict[str, dict[str, dict[str, Any]]] = {}
    for key, path in score_files.items():
        system, task = key.rsplit("__", 1)
        by_task.setdefault(task, {})[system] = json.loads(Path(path).read_text())
    for name, spec in specs.items():
        write_tables({name: spec}, by_task.get(spec["task"], {}), out_dir, [name])


def alignment_summary(histories: Mapping[str, str | Path], scores: Mapping[str, str | Path]) -> pd.DataFrame:
    """One row per aligned system: how its training went and where it ended on the test set.

    ``histories`` maps ``<init>+<method>`` to its TRL log history; ``scores`` maps
    ``<init>+<method>__<task>`` to scoring summaries. Loss start/end are means of the first and last
    three logged steps; the reward margin (DPO, CPO, KTO) is the last logged one.
    """
    from molmix.artifacts import read_artifact

    rows = []
    for system, path in histories.items():
        init, method = system.rsplit("+", 1)
        logged = read_artifact(path, "training_log").dropna(subset=["loss"])
        margins = logged["rewards/margins"].dropna() if "rewards/margins" in logged else pd.Series([])
        summary = {task: json.loads(Path(scores[f"{system}__{task}"]).read_text()) for task in TASKS}
        rows.append(
            {
                "system": system,
                "init": init,
                "method": method,
                "steps": int(logged["step"].max()) if len(logged) else 0,
                "loss start": logged["loss"].head(3).mean(),
                "loss end": logged["loss"].tail(3).mean(),
                "reward margin end": margins.iloc[-1] if len(margins) else float("nan"),
                "BLEU-2 (Mol2Cap)": summary[CAPTION_TASK].get("bleu2", float("nan")),
                "validity (Cap2Mol)": summary[MOLECULE_TASK].get("validity", float("nan")),
            }
        )
    return pd.DataFrame(rows)


def describe_alignment(scores: Mapping[str, str | Path]) -> list[str]:
    """The caption sentences of the alignment table; ``scores`` as for :func:`alignment_summary`."""
    by_task: dict[str, list[dict[str, Any]]] = {task: [] for task in TASKS}
    for key, path in scores.items():
        by_task[key.rsplit("__", 1)[1]].append(json.loads(Path(path).read_text()))
    return [
        "Rows: one per alignment run, named <init>+<method> (init = the per-task model or merge it "
        "started from; method = SFT, DPO, CPO or KTO).",
        "Columns: optimizer steps logged; loss start / end = mean training loss of the first / last "
        "three logged steps (each method's own objective: not comparable across methods); reward margin "
        "end = the last logged chosen − rejected reward margin (DPO, CPO, KTO; – for SFT); BLEU-2 "
        "(Mol2Cap) and validity (Cap2Mol, share of SMILES RDKit parses) of the aligned model on the test "
        "set, as fractions in [0, 1].",
        f"Mol2Cap {_test_items(by_task[CAPTION_TASK])}",
        f"Cap2Mol {_test_items(by_task[MOLECULE_TASK])}",
        _tokenizers(CAPTION_TASK, by_task[CAPTION_TASK]),
    ]


def alignment_summary_step(
    inputs: Mapping[str, str],
    markdown_path: str | Path,
    csv_path: str | Path,
    html_path: str | Path | None = None,
) -> pd.DataFrame:
    """The summarize_alignment step: ``inputs`` maps ``history__<system>`` and ``<system>__<task>``."""
    from molmix.artifacts import write_text

    histories = {key.removeprefix("history__"): p for key, p in inputs.items() if key.startswith("history__")}
    scores = {key: p for key, p in inputs.items() if not key.startswith("history__")}
    table = alignment_summary(histories, scores)
    write_text(
        markdown_path, _missing_as_dash(table).to_markdown(index=False, floatfmt=".3f", missingval="–") + "\n"
    )
    write_text(csv_path, table.to_csv(index=False))
    if html_path is not None:
        caption = "Alignment runs: how each run trained and where it ended on the test set"
        write_text(html_path, frame_to_html(table, caption, describe_alignment(scores)))
    return table


# How the report groups the results (rules/tables.smk): category = what it is, subcategory = the stage
# or task it belongs to, labels = the columns of the report's listing. Unknown figure names (a figure
# added later) fall under "Other figures" with their file name.
REPORT_TABLES = "Tables"
REPORT_FIGURES = "Figures"
ALIGNMENT_REPORT = {
    "subcategory": "Alignment runs",
    "labels": {"table": "Alignment runs", "shows": "training and test scores of every alignment run"},
}
FIGURE_REPORT = {
    "caption_word_counts": ("Data", "Fig. 9", "caption word counts of the test set"),
    "ratio_ablation": ("Merging", "Fig. 4", "mixing-ratio ablation of the merged model, aligned with CPO"),
    "merge_vs_soup": ("Merging", "Fig. 8", "merges against the model soup, each aligned"),
    "training_loss": (
        "Alignment",
        "training loss",
        "training loss of every alignment run, one panel per method",
    ),
    "examples_molecules": ("Examples", "Appx. K", "gold and generated molecules of sampled test items"),
    "examples_captions": ("Examples", "Appx. K", "gold and generated captions of sampled test items"),
    "examples_nli": ("Examples", "Appx. L", "atom-by-atom NLI matrices with the Eq. 6 / Eq. 7 pooling"),
}


def table_report(spec: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``subcategory`` (the task) and ``labels`` of a paper table in the report: "Table 2: what it
    shows" in the table's caption gives {table: "Table 2", shows: "what it shows"}."""
    title, _, shows = str(spec.get("caption", name)).partition(":")
    return {
        "subcategory": TASK_NAMES.get(spec["task"], spec["task"]),
        "labels": {"table": title.strip(), "shows": shows.strip() or title.strip()},
    }


def published_report(spec: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``subcategory`` and ``labels`` of a table's comparison with the paper's values (``published``)."""
    entry = table_report(spec, name)
    entry["labels"] = {
        "table": f"{entry['labels']['table']} vs paper",
        "shows": "this run next to the published values",
    }
    return entry


def figure_subcategory(wildcards) -> str:
    """The stage of a figure (``wildcards.name``, its file stem) for the report."""
    return FIGURE_REPORT.get(wildcards.name, ("Other figures",))[0]


def figure_labels(wildcards) -> dict[str, str]:
    """{figure, shows} of a figure (``wildcards.name``) for the report's listing."""
    _, figure, shows = FIGURE_REPORT.get(wildcards.name, ("", wildcards.name, wildcards.name))
    return {"figure": figure, "shows": shows}
