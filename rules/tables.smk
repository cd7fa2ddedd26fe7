rule make_tables:
    input:
        unpack(table_score_files),
    output:
        report(
            expand("results/tables/{{dataset}}/{table}.md", table=TABLES),
            caption="../workflow/report/tables.rst",
            category="Tables",
        ),
        expand(
            "results/tables/{{dataset}}/{table}.{ext}",
            table=TABLES,
            ext=["tex", "csv"],
        ),
    log:
        "logs/make_tables/{dataset}.log",
    conda:
        "../envs/molmix.yaml"
    threads: 1
    params:
        cfg=lookup(dpath="tables", within=config),
    script:
        "../workflow/scripts/make_tables.py"


rule summarize_alignment:
    input:
        unpack(alignment_summary_inputs),
    output:
        markdown=report(
            "results/tables/{dataset}/alignment.md",
            caption="../workflow/report/alignment.rst",
            category="Tables",
        ),
        csv="results/tables/{dataset}/alignment.csv",
    log:
        "logs/summarize_alignment/{dataset}.log",
    conda:
        "../envs/molmix.yaml"
    threads: 1
    script:
        "../workflow/scripts/summarize_alignment.py"


rule make_figures:
    input:
        unpack(figure_inputs),
    output:
        report(
            directory("results/figures/{dataset}"),
            patterns=["{name}.png"],
            caption="../workflow/report/figures.rst",
            category="Figures",
        ),
    log:
        "logs/make_figures/{dataset}.log",
    conda:
        "../envs/molmix.yaml"
    threads: 1
    params:
        cfg=lookup(dpath="figures", within=config),
        weights=ratio_sweep_weights(),
    script:
        "../workflow/scripts/make_figures.py"
