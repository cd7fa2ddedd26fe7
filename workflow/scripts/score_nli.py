import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.names import NLI_METHODS
from molmix.nli.steps import score_step
from molmix.runtime import start_step

start_step(snakemake.threads)
score_step(
    snakemake.input.generations,
    snakemake.input.reference_atoms,
    snakemake.input.prediction_atoms,
    snakemake.input.nli_model,
    snakemake.params.cfg,
    snakemake.params.cache,
    {method: (snakemake.output[method], snakemake.output[f"{method}_summary"]) for method in NLI_METHODS},
)
