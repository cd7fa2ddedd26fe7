import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.generate import generate_step
from molmix.runtime import start_step

start_step(snakemake.threads, snakemake.params.seed)
generate_step(
    {task: snakemake.input[f"{task}_model"] for task in snakemake.output.keys()},
    snakemake.input.test,
    snakemake.wildcards.system,
    snakemake.params.cfg,
    snakemake.params.seed,
    dict(snakemake.output.items()),
    snakemake.params.input_prefixes,
    loading=snakemake.params.loading,
    log_path=snakemake.log[0],
)
