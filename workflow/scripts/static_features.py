from semantoks.features.table import write_feature_table
from semantoks.probes.load import static_feature_set
from semantoks.rule_runner import rule_script

with rule_script(snakemake):
    name = snakemake.wildcards.feature_set
    meta, features = static_feature_set(snakemake.params.dataset, snakemake.params.atlas_id, name,
                                        list(snakemake.params.cohorts))
    record = {"feature_set": name, "atlas_id": snakemake.params.atlas_id}
    write_feature_table(snakemake.output[0], meta, features, record)
