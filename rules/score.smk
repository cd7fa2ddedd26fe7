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
        generations=expand(
            "results/generations/{{dataset}}/{{model}}/{task}.parquet", task=TASKS
        ),
        references=expand(
            "results/scores/{{dataset}}/_reference/{task}.parquet", task=TASKS
        ),
        test="results/data/{dataset}/test.parquet",
    output:
        scores=expand("results/scores/{{dataset}}/{{model}}/{task}.parquet", task=TASKS),
        summaries=expand("results/scores/{{dataset}}/{{model}}/{task}.json", task=TASKS),
    log:
        "logs/score_responses/{dataset}/{model}.log",
    benchmark:
        "benchmarks/score_responses/{dataset}/{model}.tsv"
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
        tasks=TASKS,
    script:
        "../workflow/scripts/score_responses.py"
