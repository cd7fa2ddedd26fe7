import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.align import train_alignment
from molmix.runtime import start_step

start_step(snakemake.threads, snakemake.params.seed)
train_alignment(
    snakemake.input.init,
    list(snakemake.input.negatives),
    snakemake.wildcards.method,
    snakemake.params.cfg,
    snakemake.params.seed,
    {name: snakemake.output[name] for name in ("adapter", "model", "history", "curve")},
    validation_paths=list(snakemake.input.validation),
)
