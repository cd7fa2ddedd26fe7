import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.bootstrap import train_tokenizer
from molmix.runtime import start_step

start_step(snakemake.threads)
train_tokenizer(snakemake.input.train, snakemake.params.cfg, snakemake.output[0])
