# the front page of `snakemake --report report.zip`
report: "../report/workflow.rst"


localrules:
    report,


rule report:
    """The HTML report: probe bars, pretraining curves, QC histograms, an example connectome."""
    input:
        summary=f"{R}/probes/summary.tsv",
        probes=probe_records(),
        manifests=[MANIFEST.format(cohort=c) for c in COHORTS],
        partition=PARTITION.format(cohort=PROBE_COHORTS[0]),
        labels=ATLAS_LABELS,
        log_csv=[f"{MODEL_DIR}/log.csv"] if config["pretrain"]["enabled"] else [],
        language=[f"{LANG}/evaluation.json"] if LANGUAGE["enabled"] else [],
    output:
        html=report(f"{R}/report/report.html", caption="../report/report.rst", category="Report"),
        figures=report(
            directory(f"{R}/report/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    params:
        dataset=dataset_root,
        atlas_id=ATLAS_ID,
        code=script_code("report.py"),
    log:
        f"{R}/logs/report.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/report.py"
