"""The paper's result tables (Tables 2-5) from corpus-level score summaries.

A table is configuration: a task, a list of rows (a label and the evaluated model that fills it,
optionally grouped, e.g. TIES / SLERP), and Δ rows comparing two labelled rows. Scores come from the
scoring stage's JSON summaries. Δ follows the paper: the absolute difference ``row - baseline``,
in percentage points for metrics bounded in [0, 1] and in the metric's own units for Levenshtein
and FCD (e.g. Table 3, Δ_CPOvsMED: 0.71 - 0.43 BLEU is "+29%", 4.19 - 13.64 FCD is "-9.45").

A system that was not run (its score summary says ``failed``: the model could not be loaded) keeps
its row with "–" in every metric, as does every Δ row involving it, and the table's note names it,
the reason and the log of the failed job (:func:`failure_notes`).
"""

from __future__ import annotations

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
        if spec.get("published"):
            comparison = compare_with_published(table, task, spec["published"])
            write_text(
                out / f"{name}.published.md",
                _missing_as_dash(comparison).to_markdown(index=False, floatfmt=".3f", missingval="–") + "\n",
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


def alignment_summary_step(
    inputs: Mapping[str, str], markdown_path: str | Path, csv_path: str | Path
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
    return table
