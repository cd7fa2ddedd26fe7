# priority: the base and per-task models gate merging, alignment and all that follows, so their
# jobs (and those that build them) go before the independent NLI and negative-model trainings.
rule train_tokenizer:
    input:
        train=RAW["train"],
    output:
        directory(layout.TOKENIZER),
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
        tokenizer=layout.TOKENIZER,
    output:
        directory(layout.INIT_MODEL),
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
        model=layout.INIT_MODEL,
        train=RAW["train"],
    output:
        model=directory(layout.BASE_MODEL),
        history=layout.BASE_HISTORY,
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
        model=EXPERIMENT.base_model(),
        train=RAW["train"],
    output:
        model=directory(layout.PERTASK_MODEL),
        history=layout.PERTASK_HISTORY,
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
        **{task: EXPERIMENT.pertask_model(task) for task in TASKS},
        base=EXPERIMENT.base_model(),
        init=layout.INIT_MODEL,
        test=DATA["test"],
    output:
        layout.LEARNING_CHECK,
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
        directory(layout.HUB_MODEL),
    log:
        "logs/download_model/{hub_model}.log",
    retries: 2
    localrule: True
    conda:
        "../envs/molmix.yaml"
    threads: 1
    params:
        repo_id=hub_repo_id,
        revision=hub_revision,
    script:
        "../workflow/scripts/download_model.py"
