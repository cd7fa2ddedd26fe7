import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.merge import merge_models
from molmix.runtime import start_step

start_step(snakemake.threads, snakemake.params.seed)
merge_models(
    snakemake.params.spec,
    snakemake.input.mol2cap,
    snakemake.input.cap2mol,
    snakemake.input.base,
    snakemake.output[0],
    snakemake.params.seed,
)
