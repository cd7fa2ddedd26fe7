import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.negatives import negatives_step
from molmix.runtime import start_step

start_step(snakemake.threads, snakemake.params.seed)
negatives_step(
    snakemake.input.model,
    snakemake.input.data,
    snakemake.wildcards.task,
    snakemake.params.cfg,
    snakemake.params.negative_model,
    snakemake.params.seed,
    snakemake.output.pairs,
    snakemake.output.summary,
)
