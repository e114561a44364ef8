from semantoks.probes.features import write_feature_set
from semantoks.probes.load import connectivity_feature_set
from semantoks.rule_runner import rule_script

with rule_script(snakemake):
    meta, features = connectivity_feature_set(
        snakemake.params.dataset, snakemake.params.atlas_id, snakemake.wildcards.feature_set, list(snakemake.params.cohorts)
    )
    write_feature_set(snakemake.output[0], meta, features)
