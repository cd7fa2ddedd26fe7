rule reference_statistics:
    input:
        test="results/data/{dataset}/test.parquet",
    output:
        "results/scores/{dataset}/_reference/{task}.parquet",
    log:
        "logs/reference_statistics/{dataset}/{task}.log",
    benchmark:
        "benchmarks/reference_statistics/{dataset}/{task}.tsv"
    conda:
        "../envs/molmix.yaml"
    threads: 2
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
    params:
        cfg=lookup(dpath="score", within=config),
    script:
        "../workflow/scripts/reference_statistics.py"


rule score_responses:
    input:
        generations="results/generations/{dataset}/{model}/{task}.parquet",
        test="results/data/{dataset}/test.parquet",
        reference="results/scores/{dataset}/_reference/{task}.parquet",
    output:
        scores="results/scores/{dataset}/{model}/{task}.parquet",
        summary="results/scores/{dataset}/{model}/{task}.json",
    log:
        "logs/score_responses/{dataset}/{model}/{task}.log",
    benchmark:
        "benchmarks/score_responses/{dataset}/{model}/{task}.tsv"
    wildcard_constraints:
        model="[^_/][^/]*",
    conda:
        "../envs/molmix.yaml"
    threads: 2
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
    params:
        cfg=lookup(dpath="score", within=config),
    script:
        "../workflow/scripts/score_responses.py"
