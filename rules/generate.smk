rule generate_responses:
    input:
        unpack(evaluated_model_dirs),
        test="results/data/{dataset}/test.parquet",
    output:
        mol2cap="results/generations/{dataset}/{model}/mol2cap.parquet",
        cap2mol="results/generations/{dataset}/{model}/cap2mol.parquet",
    log:
        "logs/generate_responses/{dataset}/{model}.log",
    benchmark:
        "benchmarks/generate_responses/{dataset}/{model}.tsv"
    conda:
        "../envs/molmix.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=scaled(32000),
        runtime=scaled(240),
    params:
        cfg=lookup(dpath="generate", within=config),
        input_prefixes=input_prefixes,
        seed=config["seed"],
    script:
        "../workflow/scripts/generate_responses.py"
