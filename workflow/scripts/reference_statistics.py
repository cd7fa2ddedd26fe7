import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.runtime import start_step
from molmix.scoring.core import reference_statistics_step

start_step(snakemake.threads)
reference_statistics_step(
    snakemake.input.test,
    snakemake.wildcards.task,
    snakemake.params.cfg,
    snakemake.output[0],
)
