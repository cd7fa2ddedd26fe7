rule train_nli_model:
    input:
        train=RAW["train"],
        test=RAW["test"],
    output:
        model=directory(layout.NLI_MODEL),
        metrics=layout.NLI_METRICS,
    log:
        "logs/train_nli_model/{dataset}.log",
    benchmark:
        "benchmarks/train_nli_model/{dataset}.tsv"
    conda:
        "../envs/molmix.yaml"
    threads: 2
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
    params:
        cfg=lookup(dpath="nli/model/training", within=config),
        seed=config["seed"],
    script:
        "../workflow/scripts/train_nli_model.py"


rule decompose_references:
    input:
        unpack(decomposer_models),
        captions=DATA["test"],
    output:
        layout.REFERENCE_ATOMS,
    log:
        "logs/decompose_references/{dataset}.log",
    benchmark:
        "benchmarks/decompose_references/{dataset}.tsv"
    conda:
        "../envs/molmix.yaml"
    threads: 2
    resources:
        gpu=DECOMPOSER_GPUS,
        mem_mb=scaled(24000),
        runtime=scaled(120),
    params:
        cfg=lookup(dpath="nli/decomposer", within=config),
        cache=layout.NLI_CACHE,
    script:
        "../workflow/scripts/decompose_captions.py"


rule decompose_captions:
    input:
        unpack(decomposer_models),
        captions=named(layout.GENERATIONS, "task", TASKS)[CAPTION_TASK],
    output:
        layout.ATOMS,
    log:
        "logs/decompose_captions/{dataset}/{system}.log",
    benchmark:
        "benchmarks/decompose_captions/{dataset}/{system}.tsv"
    conda:
        "../envs/molmix.yaml"
    threads: 2
    resources:
        gpu=DECOMPOSER_GPUS,
        mem_mb=scaled(24000),
        runtime=scaled(120),
    params:
        cfg=lookup(dpath="nli/decomposer", within=config),
        cache=layout.NLI_CACHE,
    script:
        "../workflow/scripts/decompose_captions.py"


rule score_nli:
    input:
        generations=named(layout.GENERATIONS, "task", TASKS)[CAPTION_TASK],
        reference_atoms=layout.REFERENCE_ATOMS,
        prediction_atoms=layout.ATOMS,
        nli_model=EXPERIMENT.nli_model(),
    output:
        **named(layout.NLI_SCORES, "method", NLI_METHODS),
        **{
            f"{method}_summary": path
            for method, path in named(
                layout.NLI_SUMMARY, "method", NLI_METHODS
            ).items()
        },
    log:
        "logs/score_nli/{dataset}/{system}.log",
    benchmark:
        "benchmarks/score_nli/{dataset}/{system}.tsv"
    conda:
        "../envs/molmix.yaml"
    threads: 2
    resources:
        gpu=NLI_GPUS,
        mem_mb=scaled(16000),
        runtime=scaled(180),
    params:
        cfg=lookup(dpath="nli/scoring", within=config),
        cache=layout.NLI_CACHE,
    script:
        "../workflow/scripts/score_nli.py"


rule compare_nli_methods:
    input:
        unpack(nli_score_files),
        test=DATA["test"],
    output:
        kl=layout.KL_TABLE,
        json=layout.KL_DETAILS,
        summary=layout.NLI_REPORT,
        summary_html=report(
            layout.NLI_REPORT_HTML,
            caption="../workflow/report/nli.rst",
            category="NLI",
            subcategory="Scores",
            labels={"shows": "NLI scores per system and method; KL of coverage"},
        ),
        figures=report(
            directory(layout.NLI_FIGURES),
            patterns=["{name}.png"],
            caption="../workflow/report/nli.rst",
            category="NLI",
            subcategory="Figures",
        ),
    log:
        "logs/compare_nli_methods/{dataset}.log",
    conda:
        "../envs/molmix.yaml"
    threads: 1
    params:
        cfg=lookup(dpath="nli/compare", within=config),
    script:
        "../workflow/scripts/compare_nli_methods.py"


rule rank_nli_methods:
    input:
        unpack(nli_ranking_inputs),
    output:
        csv=layout.NLI_RANKS,
        summary=layout.NLI_RANKS_REPORT,
        summary_html=report(
            layout.NLI_RANKS_HTML,
            caption="../workflow/report/nli.rst",
            category="NLI",
            subcategory="Scores",
            labels={"shows": "rank agreement with the caption metrics"},
        ),
    log:
        "logs/rank_nli_methods/{dataset}.log",
    conda:
        "../envs/molmix.yaml"
    threads: 1
    script:
        "../workflow/scripts/rank_nli_methods.py"
