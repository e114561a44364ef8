localrules:
    phenotypes,
    dataset_description,


rule dataset_partition:
    """Consolidate a cohort's runs into the hive-partitioned Parquet dataset and its manifest."""
    input:
        unpack(partition_inputs),
    output:
        timeseries=PARTITION,
        manifest=MANIFEST,
    params:
        atlas_id=ATLAS_ID,
        space=SPACE,
        strategy=canonical(config["denoise"]),
        code=script_code("dataset_partition.py"),
    log:
        f"{R}/logs/dataset/{{cohort}}.log",
    benchmark:
        f"{R}/benchmarks/dataset/{{cohort}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/dataset_partition.py"


rule phenotypes:
    """The cohort's typed phenotype table, checked against its declared types and imaging subjects."""
    input:
        unpack(phenotype_inputs),
    output:
        PHENOTYPE_TABLE,
    params:
        phenotypes=lambda wildcards: canonical(config["cohorts"][wildcards.cohort]["phenotypes"]),
        code=script_code("phenotypes.py"),
    log:
        f"{R}/logs/dataset/{{cohort}}_phenotypes.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/phenotypes.py"


rule dataset_description:
    """BIDS-derivative dataset_description.json at the dataset and time-series roots."""
    input:
        [PARTITION.format(cohort=c) for c in COHORTS],
    output:
        dataset=f"{R}/dataset/dataset_description.json",
        timeseries=f"{R}/timeseries/dataset_description.json",
    params:
        code=script_code("dataset_description.py"),
    log:
        f"{R}/logs/dataset/dataset_description.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/dataset_description.py"
