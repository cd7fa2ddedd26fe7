"""Copy the demo's Table 2 and learning check from a finished run into README.md.

The README shows a real excerpt of what `make demo` produces; regenerate it after a run with
    .venv/bin/python tools/update_readme_results.py [RUN_DIR]
(RUN_DIR defaults to the repository). The text between the `demo-results` markers is replaced.
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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
    return "\n\n".join(
        [
            f"Learning check (`results/models/demo/learning_check.json`, greedy decoding, {check['n']} test pairs):",
            "\n".join(rows),
            table,
            "![Training loss of every alignment run](docs/training_loss.png)",
        ]
    )


def main() -> None:
    run = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    readme = ROOT / "README.md"
    text = readme.read_text()
    block = f"{START}\n{excerpt(run)}\n{END}"
    text, count = re.subn(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    if count != 1:
        sys.exit(f"{readme}: expected one {START} ... {END} block")
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs/training_loss.png").write_bytes(
        (run / "results/figures/demo/training_loss.png").read_bytes()
    )
    readme.write_text(text)


if __name__ == "__main__":
    main()
