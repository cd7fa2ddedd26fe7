import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.nli.steps import compare_step
from molmix.runtime import start_step

start_step(snakemake.threads)
scores = {name: path for name, path in snakemake.input.items() if "__" in name}
compare_step(
    scores,
    snakemake.input.test,
    snakemake.params.cfg,
    snakemake.output.kl,
    snakemake.output.json,
    snakemake.output.summary,
    snakemake.output.summary_html,
    snakemake.output.figures,
)
