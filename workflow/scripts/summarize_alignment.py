import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.runtime import start_step
from molmix.tables import alignment_summary_step

start_step(snakemake.threads)
alignment_summary_step(
    dict(snakemake.input.items()), snakemake.output.markdown, snakemake.output.csv, snakemake.output.html
)
