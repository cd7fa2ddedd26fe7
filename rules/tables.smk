rule make_tables:
    input:
        unpack(table_score_files),
    output:
        report(
            expand(layout.TABLE, table=config["tables"], ext="md", allow_missing=True),
            caption="../workflow/report/tables.rst",
            category="Tables",
        ),
        expand(
            layout.TABLE,
            table=config["tables"],
            ext=["tex", "csv"],
            allow_missing=True,
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
            layout.ALIGNMENT_TABLE,
            caption="../workflow/report/alignment.rst",
            category="Tables",
        ),
        csv=layout.ALIGNMENT_CSV,
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
            directory(layout.FIGURES),
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
        weights=EXPERIMENT.ratio_sweep_weights(),
    script:
        "../workflow/scripts/make_figures.py"
