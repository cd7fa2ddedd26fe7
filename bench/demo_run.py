"""Wall time of the embedded default from clean: `make demo`'s commands in a fresh copy.

Usage:
    .venv/bin/python bench/demo_run.py [--directory RUN_DIR] [--cores 2]
Copies the checkout's files (tracked and untracked, not ignored) into RUN_DIR (default: a new
temporary folder, kept), runs `make demo`'s commands there with this interpreter
(`snakemake --workflow-profile profiles/cpu --cores N`, then the same with `--report
results/report.html`), and prints the wall time and, per rule, the job count and summed job seconds
from the rules' `benchmark:` files, as Markdown. The finished RUN_DIR feeds `tools/update_readme_results.py`.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEMO = ["--workflow-profile", "profiles/cpu"]  # as `make demo`


def copy_checkout(directory: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    archive = subprocess.run(
        ["tar", "--null", "-T", "-", "-cf", "-"], cwd=ROOT, input=files, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-xf", "-"], cwd=directory, input=archive, check=True)


def rule_times(directory: Path) -> pd.DataFrame:
    """Jobs and summed seconds per rule, from benchmarks/<rule>/**.tsv."""
    rows = []
    for tsv in (directory / "benchmarks").rglob("*.tsv"):
        seconds = pd.read_csv(tsv, sep="\t")["s"].iloc[-1]
        rows.append({"rule": tsv.relative_to(directory / "benchmarks").parts[0], "s": seconds})
    frame = pd.DataFrame(rows, columns=["rule", "s"])
    table = frame.groupby("rule")["s"].agg(jobs="count", seconds="sum").reset_index()
    return table.sort_values("seconds", ascending=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", type=Path, help="empty or new folder for the run")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    directory = args.directory or Path(tempfile.mkdtemp(prefix="molmix-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        sys.exit(f"{directory}: not empty; the benchmark times a run from clean")
    copy_checkout(directory)
    start = time.perf_counter()
    log = directory / "demo_run.log"

    def snakemake(*extra: str) -> None:
        command = [sys.executable, "-m", "snakemake", *DEMO, "--cores", str(args.cores), *extra]
        with open(log, "a") as out:
            if subprocess.run(command, cwd=directory, stdout=out, stderr=subprocess.STDOUT).returncode:
                sys.exit(f"the demo failed after {time.perf_counter() - start:.0f} s; see {log}")

    snakemake()
    pipeline = time.perf_counter() - start
    snakemake("--report", "results/report.html")
    wall = time.perf_counter() - start
    times = rule_times(directory)
    print(
        f"Demo from clean in {directory}: {wall / 60:.1f} min wall ({args.cores} cores; the pipeline "
        f"{pipeline / 60:.1f} min, then the report), {times['jobs'].sum()} jobs, "
        f"{times['seconds'].sum() / 60:.1f} job-minutes\n"
    )
    print(times.to_markdown(index=False, floatfmt=".0f"))


if __name__ == "__main__":
    main()
