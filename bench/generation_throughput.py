"""Generation throughput of every evaluated system of a finished run, from its generation logs.

Usage, after `make demo` (or bench/demo_run.py) has finished in RUN_DIR:
    .venv/bin/python bench/generation_throughput.py [--run RUN_DIR] [--dataset demo]
Prints a Markdown table: per system and direction, outputs, generated tokens and tokens/s as
`generate_responses` logged them (greedy, the config's batch size, one thread per job with
profiles/cpu), and how many outputs were empty or hit `max_new_tokens`.
"""

import argparse
import re
from pathlib import Path

import pandas as pd

from molmix.artifacts import read_artifact

THROUGHPUT = re.compile(r"generated (\d+) outputs, (\d+) tokens, (\d+) tokens/s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=".", type=Path)
    parser.add_argument("--dataset", default="demo")
    args = parser.parse_args()
    rows = []
    for path in sorted((args.run / "results/generations" / args.dataset).glob("*/*.parquet")):
        model, task = path.parent.name, path.stem
        log = args.run / f"logs/generate_responses/{args.dataset}/{model}/{task}.log"
        found = THROUGHPUT.findall(log.read_text()) if log.exists() else []
        if not found:
            continue
        outputs, tokens, rate = map(int, found[-1])
        frame = read_artifact(path, "generations")
        rows.append(
            {
                "system": model,
                "task": task,
                "outputs": outputs,
                "tokens": tokens,
                "tokens/s": rate,
                "empty": int(frame["empty"].sum()),
                "truncated": int(frame["truncated"].sum()),
            }
        )
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False))
    print(f"\nmedian tokens/s: {table.groupby('task')['tokens/s'].median().to_dict()}")


if __name__ == "__main__":
    main()
