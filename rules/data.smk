rule download_dataset:
    output:
        train="resources/datasets/{dataset}/raw/train.parquet",
        validation="resources/datasets/{dataset}/raw/validation.parquet",
        test="resources/datasets/{dataset}/raw/test.parquet",
        manifest="resources/datasets/{dataset}/raw/manifest.json",
    log:
        "logs/download_dataset/{dataset}.log",
    retries: 2
    localrule: True
    conda:
        "../envs/molmix.yaml"
    threads: 1
    params:
        cfg=lookup(dpath="dataset", within=config),
        seed=config["seed"],
    script:
        "../workflow/scripts/download_dataset.py"


rule subsample_dataset:
    input:
        train="resources/datasets/{dataset}/raw/train.parquet",
        validation="resources/datasets/{dataset}/raw/validation.parquet",
        test="resources/datasets/{dataset}/raw/test.parquet",
    output:
        train="results/data/{dataset}/train.parquet",
        validation="results/data/{dataset}/validation.parquet",
        test="results/data/{dataset}/test.parquet",
        summary="results/data/{dataset}/summary.json",
    log:
        "logs/subsample_dataset/{dataset}.log",
    conda:
        "../envs/molmix.yaml"
    threads: 1
    params:
        cfg=lookup(dpath="subsample", within=config),
        seed=config["seed"],
    script:
        "../workflow/scripts/subsample_dataset.py"
