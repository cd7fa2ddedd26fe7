"""Copy the demo's Table 2, learning check and NLI model checks from a finished run into README.md.

The README shows a real excerpt of what `make demo` produces; regenerate it after a run with
    .venv/bin/python tools/update_readme_results.py [RUN_DIR [README]]
(RUN_DIR defaults to the repository, README to its README.md). The text between the
`demo-results` markers is replaced; the figure is copied to docs/ beside the README.
"""

import json
import re
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from molmix.bootstrap import smiles_validity  # noqa: E402

START, END = "<!-- demo-results:start -->", "<!-- demo-results:end -->"


def excerpt(run: Path) -> str:
    table = (run / "results/tables/demo/table2.md").read_text().strip()
    check = json.loads((run / "results/models/demo/learning_check.json").read_text())
    rows = ["| model | Mol2Cap BLEU-2 | Mol2Cap ROUGE-L | Cap2Mol validity |", "|---|---|---|---|"]
    for name, values in check.items():
        if isinstance(values, dict):
            rows.append(
                f"| {name} | {values['bleu2']:.3f} | {values['rougeL']:.3f} | {values['validity']:.2f} |"
            )
    nli = json.loads((run / "results/models/demo/nli.metrics.json").read_text())
    captions = nli["captions"]
    atomic = captions["atomic"]
    nli_line = (
        f"NLI model (`results/models/demo/nli.metrics.json`): accuracy {nli['heldout']['accuracy']:.3f} on "
        f"{nli['heldout']['n']} held-out fact pairs and {nli['heldout_texts']['accuracy']:.3f} on "
        f"{nli['heldout_texts']['n']} held-out caption and sentence pairs. On {captions['n']} test captions "
        f"against themselves, coverage is {atomic['self_coverage']:.3f} (atomic), "
        f"{captions['full']['self_coverage']:.3f} (full), {captions['sentence']['self_coverage']:.3f} (sentence) and "
        f"{captions['summac']['self_coverage']:.3f} (SummaC-ZS), unsupported {atomic['self_unsupported']:.3f}; "
        f"against the test caption sharing the fewest facts (on average "
        f"{captions['unrelated_fact_overlap']:.0%} of them), coverage is {atomic['unrelated_coverage']:.3f} (atomic), "
        f"{captions['full']['unrelated_coverage']:.3f} (full), {captions['sentence']['unrelated_coverage']:.3f} "
        f"(sentence) and {captions['summac']['unrelated_coverage']:.3f} (SummaC-ZS); "
        f"scored against the next caption's reference, whose facts miss on average "
        f"{captions['shifted_unstated_share']:.0%} of theirs, unsupported is {atomic['shifted_unsupported']:.3f} "
        f"and Eq. 6's hallucination {atomic['shifted_hallucination']:.3f}."
    )
    return "\n\n".join(
        [
            negatives_line(run),
            f"Learning check (`results/models/demo/learning_check.json`, greedy decoding, {check['n']} test pairs):",
            "\n".join(rows),
            nli_line,
            (run / "results/nli/demo/ranks.md").read_text().strip().replace("## ", "NLI: ", 1),
            table,
            "![Training loss of every alignment run](docs/training_loss.png)",
        ]
    )


def negatives_line(run: Path) -> str:
    """How plausible the T5 negatives are: outputs that never stopped, valid rejected SMILES."""
    counts = {
        t: json.loads((run / f"results/negatives/demo/train/{t}.json").read_text())
        for t in ("mol2cap", "cap2mol")
    }
    rejected = pd.read_parquet(run / "results/negatives/demo/train/cap2mol.parquet")["rejected"].tolist()
    return (
        f"Negatives (`results/negatives/demo/train/`, tiny T5, greedy): of {counts['mol2cap']['inputs']} Mol2Cap "
        f"inputs, {counts['mol2cap']['truncated']} rejected captions ran to `max_new_tokens` without stopping; "
        f"of {counts['cap2mol']['inputs']} Cap2Mol inputs, {counts['cap2mol']['truncated']} did, and "
        f"{smiles_validity(rejected):.0%} of the rejected SMILES are valid molecules."
    )


def update(run: Path, readme: Path) -> None:
    text = readme.read_text()
    block = f"{START}\n{excerpt(run)}\n{END}"
    text, count = re.subn(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    if count != 1:
        sys.exit(f"{readme}: expected one {START} ... {END} block")
    (readme.parent / "docs").mkdir(exist_ok=True)
    (readme.parent / "docs/training_loss.png").write_bytes(
        (run / "results/figures/demo/training_loss.png").read_bytes()
    )
    readme.write_text(text)


if __name__ == "__main__":
    update(
        Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT,
        Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "README.md",
    )
