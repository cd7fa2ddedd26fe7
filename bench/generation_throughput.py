"""Generation throughput of every evaluated system of a finished run, from its generation logs.

Usage, after `make demo` (or bench/demo_run.py) has finished in RUN_DIR:
    .venv/bin/python bench/generation_throughput.py [--run RUN_DIR] [--dataset demo]
Prints a Markdown table: per system and direction, outputs, generated tokens and tokens/s as
`generate_responses` recorded them in each generations file's metadata (greedy, the config's batch
size, one thread per job with profiles/cpu), and how many outputs were empty or hit `max_new_tokens`.
"""

import argparse
from pathlib import Path

import pandas as pd

from molmix.artifacts import read_artifact, read_metadata


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=".", type=Path)
    parser.add_argument("--dataset", default="demo")
    args = parser.parse_args()
    rows = []
    for path in sorted((args.run / "results/generations" / args.dataset).glob("*/*.parquet")):
        frame = read_artifact(path, "generations")
        throughput = read_metadata(path).get("throughput")
        if throughput is None:
            continue
        rows.append(
            {
                "system": path.parent.name,
                "task": path.stem,
                "outputs": len(frame),
                "tokens": throughput["new_tokens"],
                "tokens/s": round(throughput["tokens_per_second"]),
                "empty": int(frame["empty"].sum()),
                "truncated": int(frame["truncated"].sum()),
            }
        )
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False))
    print(f"\nmedian tokens/s: {table.groupby('task')['tokens/s'].median().to_dict()}")


if __name__ == "__main__":
    main()
