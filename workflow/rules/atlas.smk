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
