rule generate_responses:
    input:
        model=evaluated_model_dir,
        test="results/data/{dataset}/test.parquet",
    output:
        "results/generations/{dataset}/{model}/{task}.parquet",
    log:
        "logs/generate_responses/{dataset}/{model}/{task}.log",
    benchmark:
        "benchmarks/generate_responses/{dataset}/{model}/{task}.tsv"
    conda:
        "../envs/molmix.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=scaled(32000),
        runtime=scaled(120),
    params:
        cfg=lookup(dpath="generate", within=config),
        input_prefix=input_prefix,
        seed=config["seed"],
    script:
        "../workflow/scripts/generate_responses.py"
