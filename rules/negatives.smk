rule train_negative_model:
    input:
        tokenizer=layout.TOKENIZER,
        train=RAW["train"],
    output:
        model=directory(layout.NEGATIVE_MODEL),
        history=layout.NEGATIVE_HISTORY,
    log:
        "logs/train_negative_model/{dataset}/{task}.log",
    benchmark:
        "benchmarks/train_negative_model/{dataset}/{task}.tsv"
    conda:
        "../envs/molmix.yaml"
    threads: 2
    params:
        cfg=lookup(dpath="models/negative", within=config),
        seed=config["seed"],
    script:
        "../workflow/scripts/train_negative_model.py"


# Preference pairs of the training split (alignment) and of the validation split (its eval_loss).
rule generate_negatives:
    input:
        model=negative_model,
        data=layout.SPLIT,
    output:
        pairs=layout.NEGATIVES,
        summary=layout.NEGATIVES_SUMMARY,
    log:
        "logs/generate_negatives/{dataset}/{split}/{task}.log",
    benchmark:
        "benchmarks/generate_negatives/{dataset}/{split}/{task}.tsv"
    wildcard_constraints:
        split=one_of(layout.PREFERENCE_SPLITS),
    conda:
        "../envs/molmix.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=scaled(16000),
        runtime=scaled(120),
    params:
        cfg=lookup(dpath="negatives", within=config),
        negative_model=negative_model_name,
        seed=config["seed"],
    script:
        "../workflow/scripts/generate_negatives.py"
