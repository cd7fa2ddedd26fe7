import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from molmix.bootstrap import learning_check
from molmix.names import TASKS
from molmix.runtime import start_step

start_step(snakemake.threads, 0)
models = {"untrained": snakemake.input.init, "base": snakemake.input.base}
models.update({task: snakemake.input[task] for task in TASKS})
learning_check(models, snakemake.input.test, snakemake.params.cfg, snakemake.output[0])
