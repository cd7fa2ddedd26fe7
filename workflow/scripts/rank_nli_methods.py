import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.nli.steps import rank_step
from molmix.runtime import start_step

start_step(snakemake.threads)
rank_step(
    {name: path for name, path in snakemake.input.items() if "__" in name and not name.startswith("score__")},
    {
        name.removeprefix("score__"): path
        for name, path in snakemake.input.items()
        if name.startswith("score__")
    },
    snakemake.output.csv,
    snakemake.output.summary,
    snakemake.output.summary_html,
)
