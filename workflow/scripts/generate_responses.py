import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.generate import generate_step
from molmix.runtime import start_step

start_step(snakemake.threads, snakemake.params.seed)
generate_step(
    snakemake.input.model,
    snakemake.input.test,
    snakemake.wildcards.task,
    snakemake.wildcards.model,
    snakemake.params.cfg,
    snakemake.params.seed,
    snakemake.output[0],
    snakemake.params.input_prefix,
)
