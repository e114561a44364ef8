if ROI_ONLY:

    # tiny jobs run where Snakemake runs, never as cluster submissions
    localrules:
        roi_parcellation,

    rule roi_parcellation:
        """The ROI cohorts' own parcellation: its labels table (networks from the table or by Yeo overlap)."""
        input:
            unpack(roi_parcellation_inputs),
        output:
            labels=ATLAS_LABELS,
        params:
            roi=canonical(roi_settings(ROI_COHORTS[0])),
            cohort=ROI_COHORTS[0],
            templateflow_home=config["atlas"]["templateflow_home"],
            allow_download=config["atlas"]["allow_download"],
            code=script_code("roi_parcellation.py"),
        log:
            f"{R}/logs/atlas/{ATLAS_ID}.log",
        conda:
            "../../envs/pipeline.yaml"
        threads: 1
        resources:
            mem_mb=2000,
        script:
            "../scripts/roi_parcellation.py"

else:

    # tiny jobs run where Snakemake runs, never as cluster submissions (and the atlas may need the internet)
    localrules:
        atlas,

    rule atlas:
        """Resolve the atlas (local TemplateFlow folder first) and write its parcel -> network table."""
        output:
            labels=ATLAS_LABELS,
            dseg=ATLAS_DSEG,
        params:
            atlas=canonical(config["atlas"]),
            # resolved once by the Snakefile; the script then needs no planning code
            spec=ATLAS,
            code=script_code("atlas.py"),
        log:
            f"{R}/logs/atlas/{ATLAS_ID}.log",
        conda:
            "../../envs/pipeline.yaml"
        threads: 1
        resources:
            mem_mb=2000,
        script:
            "../scripts/atlas.py"
