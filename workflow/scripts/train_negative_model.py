import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.bootstrap import train_negative_model
from molmix.runtime import start_step

start_step(snakemake.threads, snakemake.params.seed)
train_negative_model(
    snakemake.input.tokenizer,
    snakemake.input.train,
    snakemake.wildcards.task,
    snakemake.params.cfg,
    snakemake.params.seed,
    snakemake.output.model,
    snakemake.output.history,
)
