# priority: the base and per-task models gate merging, alignment and all that follows, so their
# jobs (and those that build them) go before the independent NLI and negative-model trainings.
rule train_tokenizer:
    input:
        train="resources/datasets/{dataset}/raw/train.parquet",
    output:
        directory("results/models/{dataset}/tokenizer"),
    log:
        "logs/train_tokenizer/{dataset}.log",
    priority: 10
    conda:
        "../envs/molmix.yaml"
    threads: 1
    params:
        cfg=lookup(dpath="models/tokenizer", within=config),
    script:
        "../workflow/scripts/train_tokenizer.py"


rule init_base_model:
    input:
        tokenizer="results/models/{dataset}/tokenizer",
    output:
        directory("results/models/{dataset}/init"),
    log:
        "logs/init_base_model/{dataset}.log",
    priority: 10
    conda:
        "../envs/molmix.yaml"
    threads: 1
    params:
        cfg=lookup(dpath="models/base", within=config),
        seed=config["seed"],
    script:
        "../workflow/scripts/init_base_model.py"


rule pretrain_base_model:
    input:
        model="results/models/{dataset}/init",
        train="resources/datasets/{dataset}/raw/train.parquet",
    output:
        model=directory("results/models/{dataset}/base"),
        history="results/models/{dataset}/base.history.csv",
    log:
        "logs/pretrain_base_model/{dataset}.log",
    benchmark:
        "benchmarks/pretrain_base_model/{dataset}.tsv"
    priority: 10
    conda:
        "../envs/molmix.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=scaled(16000),
        runtime=scaled(240),
    params:
        cfg=lookup(dpath="models/base/pretrain", within=config),
        seed=config["seed"],
    script:
        "../workflow/scripts/pretrain_base_model.py"


rule train_pertask_model:
    input:
        model=base_model_dir(),
        train="resources/datasets/{dataset}/raw/train.parquet",
    output:
        model=directory("results/models/{dataset}/pertask/{task}"),
        history="results/models/{dataset}/pertask/{task}.history.csv",
    log:
        "logs/train_pertask_model/{dataset}/{task}.log",
    benchmark:
        "benchmarks/train_pertask_model/{dataset}/{task}.tsv"
    priority: 10
    conda:
        "../envs/molmix.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=scaled(40000),
        runtime=scaled(480),
    params:
        cfg=lookup(dpath="models/pertask/training", within=config),
        seed=config["seed"],
    script:
        "../workflow/scripts/train_pertask_model.py"


rule check_pertask_learning:
    input:
        base=base_model_dir(),
        init="results/models/{dataset}/init",
        mol2cap=pertask_model_dir("mol2cap"),
        cap2mol=pertask_model_dir("cap2mol"),
        test="results/data/{dataset}/test.parquet",
    output:
        "results/models/{dataset}/learning_check.json",
    log:
        "logs/check_pertask_learning/{dataset}.log",
    conda:
        "../envs/molmix.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=scaled(32000),
        runtime=scaled(120),
    params:
        cfg=lookup(dpath="generate", within=config),
    script:
        "../workflow/scripts/check_pertask_learning.py"


rule download_model:
    output:
        directory("resources/models/{hub_model}"),
    log:
        "logs/download_model/{hub_model}.log",
    retries: 2
    localrule: True
    conda:
        "../envs/molmix.yaml"
    threads: 1
    params:
        repo_id=hub_repo_id,
    script:
        "../workflow/scripts/download_model.py"
