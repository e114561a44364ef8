if ROI_ONLY:

    rule roi_parcellation:
        """The ROI cohorts' own parcellation: its labels table (networks from the table or by Yeo overlap)."""
        input:
            unpack(roi_parcellation_inputs),
        output:
            labels=ATLAS_LABELS,
        params:
            roi=roi_settings(ROI_COHORTS[0]),
            cohort=ROI_COHORTS[0],
            templateflow_home=config["atlas"]["templateflow_home"],
            allow_download=config["atlas"]["allow_download"],
            code=CODE_VERSION,
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

    rule atlas:
        """Resolve the atlas (local TemplateFlow folder first) and write its parcel -> network table."""
        output:
            labels=ATLAS_LABELS,
            dseg=ATLAS_DSEG,
        params:
            atlas=config["atlas"],
            code=CODE_VERSION,
        log:
            f"{R}/logs/atlas/{ATLAS_ID}.log",
        conda:
            "../../envs/pipeline.yaml"
        threads: 1
        resources:
            mem_mb=2000,
        script:
            "../scripts/atlas.py"
