import sys

# The Snakefile process imports molmix from the checkout; scripts find it through the
# workflow/scripts/molmix link (Snakemake puts the script folder on their sys.path).
sys.path.insert(0, f"{workflow.basedir}/workflow")
from molmix.config import validate_config

# JSON Schema validation with defaults filled in (workflow/schemas/config.schema.yaml), reporting
# each bad key by its dotted path rather than Snakemake's dump of the whole schema.
validate_config(config)

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
