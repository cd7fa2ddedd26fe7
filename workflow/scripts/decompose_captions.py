import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.nli.steps import decompose_step
from molmix.runtime import start_step

start_step(snakemake.threads)
decompose_step(
    snakemake.input.captions,
    "reference" if snakemake.rule == "decompose_references" else "prediction",
    snakemake.params.cfg,
    snakemake.params.cache,
    snakemake.input.get("decomposer"),
    snakemake.output[0],
)
