import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.bootstrap import train_causal_lm
from molmix.names import TASKS
from molmix.runtime import start_step

start_step(snakemake.threads, snakemake.params.seed)
train_causal_lm(
    snakemake.input.model,
    snakemake.input.train,
    list(TASKS),
    snakemake.params.cfg,
    snakemake.params.seed,
    snakemake.output.model,
    snakemake.output.history,
)
