import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.nli.steps import baselines_step
from molmix.runtime import start_step

start_step(snakemake.threads)
baselines_step(
    snakemake.input.generations,
    snakemake.input.nli_model,
    snakemake.params.cfg,
    snakemake.params.cache,
    {
        "full": (snakemake.output.full, snakemake.output.full_summary),
        "sentence": (snakemake.output.sentence, snakemake.output.sentence_summary),
    },
)
