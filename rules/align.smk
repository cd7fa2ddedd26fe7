rule train_alignment:
    input:
        init=init_model,
        negatives=EXPERIMENT.negatives("train"),
        validation=EXPERIMENT.negatives("validation"),
    output:
        adapter=directory(layout.ALIGNED_ADAPTER),
        model=directory(layout.ALIGNED_MODEL),
        history=layout.ALIGNED_HISTORY,
        curve=layout.ALIGNED_CURVE,
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
        cfg=alignment_settings,
        seed=config["seed"],
    script:
        "../workflow/scripts/train_alignment.py"
