import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.figures import figures_step
from molmix.runtime import start_step

start_step(snakemake.threads)
figures_step(
    snakemake.params.cfg, dict(snakemake.input.items()), snakemake.params.weights, snakemake.output[0]
)
