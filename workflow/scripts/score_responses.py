import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.runtime import start_step
from molmix.scoring.core import score_step

start_step(snakemake.threads)
score_step(
    snakemake.input.generations,
    snakemake.input.test,
    snakemake.input.reference,
    snakemake.wildcards.task,
    snakemake.params.cfg,
    snakemake.output.scores,
    snakemake.output.summary,
)
