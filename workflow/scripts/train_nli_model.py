import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.nli.train import train_nli_model
from molmix.runtime import start_step

start_step(snakemake.threads, snakemake.params.seed)
train_nli_model(
    snakemake.input.train,
    snakemake.params.cfg,
    snakemake.params.seed,
    snakemake.output.model,
    snakemake.output.metrics,
    snakemake.input.test,
)
