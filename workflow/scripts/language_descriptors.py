from pathlib import Path

from semantoks.language.descriptors import describe_dataset
from semantoks.rule_runner import rule_script

with rule_script(snakemake) as log:
    settings = snakemake.params.language
    record = describe_dataset(snakemake.params.dataset, snakemake.params.atlas_id, list(snakemake.params.cohorts),
                              Path(snakemake.output.reference).parent, settings["test_size"], settings["seed"],
                              processes=snakemake.threads)
    log.info("%d scans described, %d skipped", record["n_scans"], record["n_skipped"])
