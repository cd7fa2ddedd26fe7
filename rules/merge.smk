rule merge_models:
    input:
        mol2cap=pertask_model_dir("mol2cap"),
        cap2mol=pertask_model_dir("cap2mol"),
        base=base_model_dir(),
    output:
        protected(directory("results/models/{dataset}/merged/{merge}")),
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
