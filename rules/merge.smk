rule merge_models:
    input:
        **{task: EXPERIMENT.pertask_model(task) for task in TASKS},
        base=EXPERIMENT.base_model(),
    output:
        protected(directory(layout.MERGED_MODEL)),
    log:
        "logs/merge_models/{dataset}/{merge}.log",
    benchmark:
        "benchmarks/merge_models/{dataset}/{merge}.tsv"
    conda:
        "../envs/molmix.yaml"
    threads: 1
    resources:
        mem_mb=scaled(32000),
        runtime=scaled(60),
    params:
        spec=merge_spec,
        seed=config["seed"],
    script:
        "../workflow/scripts/merge_models.py"
