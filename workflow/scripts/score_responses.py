import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.runtime import start_step
from molmix.scoring.core import score_step

start_step(snakemake.threads)
for task, generations, references, scores, summary in zip(
    snakemake.params.tasks,
    snakemake.input.generations,
    snakemake.input.references,
    snakemake.output.scores,
    snakemake.output.summaries,
    strict=True,
):
    score_step(generations, snakemake.input.test, references, task, snakemake.params.cfg, scores, summary)
