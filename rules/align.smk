rule train_alignment:
    input:
        init=init_model_for,
        negatives=expand("results/negatives/{{dataset}}/{task}.parquet", task=TASKS),
    output:
        adapter=directory("results/aligned/{dataset}/{init}/{method}/adapter"),
        model=directory("results/aligned/{dataset}/{init}/{method}/model"),
        history="results/aligned/{dataset}/{init}/{method}/history.parquet",
        curve="results/aligned/{dataset}/{init}/{method}/loss.png",
    log:
        "logs/train_alignment/{dataset}/{init}/{method}.log",
    benchmark:
        "benchmarks/train_alignment/{dataset}/{init}/{method}.tsv"
    conda:
        "../envs/molmix.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=scaled(40000),
        runtime=scaled(1440),
    params:
        cfg=alignment_params,
        seed=config["seed"],
    script:
        "../workflow/scripts/train_alignment.py"
