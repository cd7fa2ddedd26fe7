import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.data import download_dataset
from molmix.names import SPLITS
from molmix.runtime import start_step

start_step(snakemake.threads, offline=False)
download_dataset(
    snakemake.params.cfg,
    snakemake.params.seed,
    {split: snakemake.output[split] for split in SPLITS},
    snakemake.output.manifest,
    snakemake.params.revisions,
)
