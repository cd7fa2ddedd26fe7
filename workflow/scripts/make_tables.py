import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from pathlib import Path

from molmix.runtime import start_step
from molmix.tables import tables_step

start_step(snakemake.threads)
tables_step(snakemake.params.cfg, dict(snakemake.input.items()), Path(snakemake.output[0]).parent)
