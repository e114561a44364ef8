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
