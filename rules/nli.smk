rule train_nli_model:
    input:
        train="resources/datasets/{dataset}/raw/train.parquet",
        test="resources/datasets/{dataset}/raw/test.parquet",
    output:
        model=directory("results/models/{dataset}/nli"),
        metrics="results/models/{dataset}/nli.metrics.json",
    log:
        "logs/train_nli_model/{dataset}.log",
    benchmark:
        "benchmarks/train_nli_model/{dataset}.tsv"
    conda:
        "../envs/molmix.yaml"
    threads: 2
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
    params:
        cfg=lookup(dpath="nli/model/training", within=config),
        seed=config["seed"],
    script:
        "../workflow/scripts/train_nli_model.py"


rule decompose_references:
    input:
        unpack(decomposer_model),
        captions="results/data/{dataset}/test.parquet",
    output:
        "results/nli/{dataset}/_reference/atoms.parquet",
    log:
        "logs/decompose_references/{dataset}.log",
    benchmark:
        "benchmarks/decompose_references/{dataset}.tsv"
    conda:
        "../envs/molmix.yaml"
    threads: 2
    resources:
        gpu=decomposer_gpus(),
        mem_mb=scaled(24000),
        runtime=scaled(120),
    params:
        cfg=lookup(dpath="nli/decomposer", within=config),
        cache=NLI_CACHE,
    script:
        "../workflow/scripts/decompose_captions.py"


rule decompose_captions:
    input:
        unpack(decomposer_model),
        captions="results/generations/{dataset}/{model}/mol2cap.parquet",
    output:
        "results/nli/{dataset}/{model}/atoms.parquet",
    log:
        "logs/decompose_captions/{dataset}/{model}.log",
    benchmark:
        "benchmarks/decompose_captions/{dataset}/{model}.tsv"
    wildcard_constraints:
        model="[^_/][^/]*",
    conda:
        "../envs/molmix.yaml"
    threads: 2
    resources:
        gpu=decomposer_gpus(),
        mem_mb=scaled(24000),
        runtime=scaled(120),
    params:
        cfg=lookup(dpath="nli/decomposer", within=config),
        cache=NLI_CACHE,
    script:
        "../workflow/scripts/decompose_captions.py"


rule score_nli:
    input:
        generations="results/generations/{dataset}/{model}/mol2cap.parquet",
        reference_atoms="results/nli/{dataset}/_reference/atoms.parquet",
        prediction_atoms="results/nli/{dataset}/{model}/atoms.parquet",
        nli_model=nli_model_dir(),
    output:
        atomic="results/nli/{dataset}/{model}/atomic.parquet",
        atomic_summary="results/nli/{dataset}/{model}/atomic.json",
        full="results/nli/{dataset}/{model}/full.parquet",
        full_summary="results/nli/{dataset}/{model}/full.json",
        sentence="results/nli/{dataset}/{model}/sentence.parquet",
        sentence_summary="results/nli/{dataset}/{model}/sentence.json",
    log:
        "logs/score_nli/{dataset}/{model}.log",
    benchmark:
        "benchmarks/score_nli/{dataset}/{model}.tsv"
    wildcard_constraints:
        model="[^_/][^/]*",
    conda:
        "../envs/molmix.yaml"
    threads: 2
    resources:
        gpu=nli_gpus(),
        mem_mb=scaled(16000),
        runtime=scaled(180),
    params:
        cfg=lookup(dpath="nli/scoring", within=config),
        cache=NLI_CACHE,
    script:
        "../workflow/scripts/score_nli.py"


rule compare_nli_methods:
    input:
        unpack(nli_score_files),
        test="results/data/{dataset}/test.parquet",
    output:
        kl="results/nli/{dataset}/kl.csv",
        json="results/nli/{dataset}/kl.json",
        summary=report(
            "results/nli/{dataset}/summary.md",
            caption="../workflow/report/nli.rst",
            category="NLI",
        ),
        figures=report(
            directory("results/nli/{dataset}/figures"),
            patterns=["{name}.png"],
            caption="../workflow/report/nli.rst",
            category="NLI",
        ),
    log:
        "logs/compare_nli_methods/{dataset}.log",
    conda:
        "../envs/molmix.yaml"
    threads: 1
    params:
        cfg=lookup(dpath="nli/compare", within=config),
    script:
        "../workflow/scripts/compare_nli_methods.py"
