import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.data import subsample_dataset
from molmix.names import SPLITS
from molmix.runtime import start_step

start_step(snakemake.threads)
subsample_dataset(
    snakemake.params.cfg,
    snakemake.params.seed,
    {split: snakemake.input[split] for split in SPLITS},
    {split: snakemake.output[split] for split in SPLITS},
    snakemake.output.summary,
)
