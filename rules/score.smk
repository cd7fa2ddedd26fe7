rule reference_statistics:
    input:
        test=DATA["test"],
    output:
        layout.REFERENCE_STATISTICS,
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
        generations=expand(layout.GENERATIONS, task=TASKS, allow_missing=True),
        references=expand(layout.REFERENCE_STATISTICS, task=TASKS, allow_missing=True),
        test=DATA["test"],
    output:
        scores=expand(layout.SCORES, task=TASKS, allow_missing=True),
        summaries=expand(layout.SCORE_SUMMARY, task=TASKS, allow_missing=True),
    log:
        "logs/score_responses/{dataset}/{system}.log",
    benchmark:
        "benchmarks/score_responses/{dataset}/{system}.tsv"
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
