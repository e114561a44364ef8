localrules:
    probe_summary,


rule probe_phenotype:
    """Linear probes of one phenotype on every feature set, on the same subject-grouped splits."""
    input:
        features=[feature_path(name) for name in FEATURE_FILES],
        phenotypes=[PHENOTYPE_TABLE.format(cohort=c) for c in PROBE_COHORTS],
        partitions=[PARTITION.format(cohort=c) for c in PROBE_COHORTS],
    output:
        f"{R}/probes/{{phenotype}}.json",
    params:
        probe=canonical(config["probe"]),
        hold_out=canonical(config["pretrain"]["hold_out"]),
        feature_sets=FEATURE_SETS,
        feature_files=FEATURE_FILES,
        dataset=dataset_root,
        cohorts=PROBE_COHORTS,
        types=phenotype_types,
        code=script_code("probe_phenotype.py"),
    log:
        f"{R}/logs/probe/{{phenotype}}.log",
    benchmark:
        f"{R}/benchmarks/probe/{{phenotype}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/probe_phenotype.py"


rule probe_language:
    """The language sets (model_aligned, codes_K) probed on the main probe's splits, paired with its baselines."""
    input:
        features=list(LANGUAGE_FEATURE_FILES.values()),
        reference=f"{R}/probes/{{phenotype}}.json",
        phenotypes=[PHENOTYPE_TABLE.format(cohort=c) for c in PROBE_COHORTS],
        partitions=[PARTITION.format(cohort=c) for c in PROBE_COHORTS],
    output:
        f"{R}/probes/language/{{phenotype}}.json",
    params:
        probe=canonical(config["probe"]),
        hold_out=canonical(config["pretrain"]["hold_out"]),
        feature_sets=list(LANGUAGE_FEATURE_FILES),
        feature_files=list(LANGUAGE_FEATURE_FILES),
        dataset=dataset_root,
        cohorts=PROBE_COHORTS,
        types=phenotype_types,
        code=script_code("probe_phenotype.py"),
    log:
        f"{R}/logs/probe/language_{{phenotype}}.log",
    benchmark:
        f"{R}/benchmarks/probe/language_{{phenotype}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/probe_phenotype.py"


rule probe_summary:
    """One table of every probe (feature set x phenotype x metric, shuffled-label controls), one of paired tests."""
    input:
        probe_records(),
    output:
        summary=report(f"{R}/probes/summary.tsv", caption="../report/probe_summary.rst", category="Probes"),
        paired=f"{R}/probes/paired.tsv",
    params:
        code=script_code("probe_summary.py"),
    log:
        f"{R}/logs/probe/summary.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/probe_summary.py"
