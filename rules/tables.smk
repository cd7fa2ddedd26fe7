from molmix.tables import (
    ALIGNMENT_REPORT,
    REPORT_FIGURES,
    REPORT_TABLES,
    figure_labels,
    figure_subcategory,
    published_report,
    table_report,
)

# The report shows each table as HTML (it offers Markdown only as a download): one entry per table,
# grouped by task, labelled "Table N" and what it shows (molmix.tables.table_report).
TABLE_HTML = named(layout.TABLE, "ext", ["html"])["html"]
# tables printed beside the paper's reported values (tables.<name>.published): <name>.published.*
PUBLISHED = {
    f"{table}.published": spec
    for table, spec in config["tables"].items()
    if spec.get("published")
}


rule make_tables:
    input:
        unpack(table_score_files),
    output:
        *[
            report(
                path,
                caption="../workflow/report/tables.rst",
                category=REPORT_TABLES,
                **table_report(config["tables"][table], table),
            )
            for table, path in named(TABLE_HTML, "table", config["tables"]).items()
        ],
        *[
            report(
                path,
                caption="../workflow/report/published.rst",
                category=REPORT_TABLES,
                **published_report(PUBLISHED[name], name),
            )
            for name, path in named(TABLE_HTML, "table", PUBLISHED).items()
        ],
        files=expand(
            layout.TABLE,
            table=config["tables"],
            ext=["md", "tex", "csv"],
            allow_missing=True,
        ),
        published=expand(layout.TABLE, table=PUBLISHED, ext="md", allow_missing=True),
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
        html=report(
            named(TABLE_HTML, "table", [layout.ALIGNMENT])[layout.ALIGNMENT],
            caption="../workflow/report/alignment.rst",
            category=REPORT_TABLES,
            **ALIGNMENT_REPORT,
        ),
        markdown=layout.ALIGNMENT_TABLE,
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
            category=REPORT_FIGURES,
            subcategory=figure_subcategory,
            labels=figure_labels,
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
