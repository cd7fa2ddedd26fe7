rule download_dataset:
    output:
        **named(layout.RAW_SPLIT, "split", SPLITS),
        manifest=layout.RAW_MANIFEST,
    log:
        "logs/download_dataset/{dataset}.log",
    retries: 2
    localrule: True
    conda:
        "../envs/molmix.yaml"
    threads: 1
    params:
        cfg=lookup(dpath="dataset", within=config),
        revisions=dataset_revisions(config),
        seed=config["seed"],
    script:
        "../workflow/scripts/download_dataset.py"


rule subsample_dataset:
    input:
        **RAW,
    output:
        **DATA,
        summary=layout.SUBSAMPLE_SUMMARY,
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
