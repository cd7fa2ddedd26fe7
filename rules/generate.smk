rule generate_responses:
    input:
        unpack(system_models),
        test=DATA["test"],
    output:
        **named(layout.GENERATIONS, "task", TASKS),
    log:
        "logs/generate_responses/{dataset}/{system}.log",
    benchmark:
        "benchmarks/generate_responses/{dataset}/{system}.tsv"
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
        loading=system_loading,
        seed=config["seed"],
    script:
        "../workflow/scripts/generate_responses.py"
