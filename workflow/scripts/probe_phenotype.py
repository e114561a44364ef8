from semantoks.probes import expand_phenotype_specs, probe_phenotype
from semantoks.probes.load import load_feature_sets, load_phenotypes
from semantoks.probes.summary import read_probe_record
from semantoks.rule_runner import rule_script

with rule_script(snakemake):
    settings = snakemake.params.probe
    phenotypes = load_phenotypes(snakemake.params.dataset, list(snakemake.params.cohorts),
                                 only_held_out=snakemake.params.hold_out if settings["only_held_out"] else None)
    specs = expand_phenotype_specs(settings["phenotypes"], snakemake.params.types)
    probe_phenotype(
        load_feature_sets(dict(zip(snakemake.params.feature_files, snakemake.input.features))),
        phenotypes,
        snakemake.wildcards.phenotype,
        specs[snakemake.wildcards.phenotype],
        n_repeats=settings["n_repeats"],
        test_size=settings["test_size"],
        n_permutations=settings["n_permutations"],
        seed=settings["seed"],
        inner_folds=settings["inner_folds"],
        min_subjects=settings["min_subjects"],
        split=settings["split"],
        site_column=settings["site_column"],
        confounds=settings["confounds"],
        out_json=snakemake.output[0],
        n_threads=snakemake.threads,
        probed=list(snakemake.params.feature_sets),
        # probe_language: the main record of this phenotype, for paired tests on its splits
        reference=read_probe_record(snakemake.input.reference) if "reference" in snakemake.input.keys() else None,
    )
