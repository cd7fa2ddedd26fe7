import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.lm import download_model
from molmix.runtime import start_step

start_step(snakemake.threads, offline=False)
download_model(snakemake.params.repo_id, snakemake.output[0], snakemake.params.revision)
