"""Time a no-op re-run of a completed pipeline (issue: "changing nothing re-runs nothing, in seconds").

Usage, after `make demo` has finished in the repository:
    .venv/bin/python bench/noop_rerun.py [--configfile config.yaml] [--directory RUN_DIR] [--repeat 3]
Prints the wall time of `snakemake --cores 1` (which must find nothing to do) and of a dry run.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(args):
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=ROOT, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(result.stdout + result.stderr)
    return elapsed, result.stdout + result.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", default="config.yaml")
    parser.add_argument("--directory", default=str(ROOT), help="working directory of the completed run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    common = [
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        args.directory,
        "--configfile",
        str(Path(args.configfile).resolve()),
        "--cores",
        "1",
    ]
    for label, extra in (("dry run", ["-n"]), ("no-op run", [])):
        times = []
        for _ in range(args.repeat):
            elapsed, output = timed(common + extra)
            if "Nothing to be done" not in output:
                sys.exit(f"the pipeline is not complete: {label} would run jobs\n{output[-2000:]}")
            times.append(elapsed)
        print(
            f"{label}: best {min(times):.2f} s, median {sorted(times)[len(times) // 2]:.2f} s over {args.repeat}"
        )


if __name__ == "__main__":
    main()
