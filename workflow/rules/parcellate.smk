rule parcellate_run:
    """Denoise one run with its fMRIPrep confounds and extract parcel time series (one job per run)."""
    input:
        unpack(parcellate_inputs),
    output:
        timeseries=TIMESERIES,
        qc=RUN_QC,
        **RUN_TSVS,
    params:
        run=run_of,
        strategy=canonical(config["denoise"]),
        outputs=canonical(config["outputs"]),
        atlas_id=ATLAS_ID,
        space=SPACE,
        code=script_code("parcellate_run.py"),
    log:
        f"{R}/logs/parcellate/{{cohort}}/{{scan_dir}}/{{scan_id}}.log",
    group:
        "parcellate"
    benchmark:
        f"{R}/benchmarks/parcellate/{{cohort}}/{{scan_dir}}/{{scan_id}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/parcellate_run.py"


rule import_roi_timeseries:
    """A cohort that arrives already parcellated: its ROI time series files, in the per-run format."""
    input:
        unpack(roi_import_inputs),
    output:
        ROI_IMPORT_INDEX,
    params:
        roi=lambda wildcards: canonical(roi_settings(wildcards.cohort)),
        phenotypes=lambda wildcards: canonical(config["cohorts"][wildcards.cohort]["phenotypes"]),
        phenotype_values=roi_import_phenotypes,
        out_dir=lambda wildcards: f"{R}/timeseries/{wildcards.cohort}",
        templateflow_home=config["atlas"]["templateflow_home"],
        code=script_code("import_roi_timeseries.py"),
    log:
        f"{R}/logs/import_roi/{{cohort}}.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/import_roi_timeseries.py"
