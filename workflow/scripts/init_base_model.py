import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.bootstrap import init_base_model
from molmix.runtime import start_step

start_step(snakemake.threads, snakemake.params.seed)
init_base_model(snakemake.input.tokenizer, snakemake.params.cfg, snakemake.params.seed, snakemake.output[0])
