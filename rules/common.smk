import sys

from snakemake.utils import validate

# The Snakefile process imports molmix from the checkout; scripts find it through the
# workflow/scripts/molmix link (Snakemake puts the script folder on their sys.path).
sys.path.insert(0, f"{workflow.basedir}/workflow")
from molmix.config import check_config

validate(config, schema="../workflow/schemas/config.schema.yaml", set_default=True)
check_config(config)

DATASET = config["dataset"]["name"]
SPLITS = ["train", "validation", "test"]


wildcard_constraints:
    dataset=DATASET,
    split="|".join(SPLITS),


def get_final_output():
    """Every target of the configured experiment."""
    return expand(
        "results/data/{dataset}/{split}.parquet", dataset=DATASET, split=SPLITS
    )
