from semantoks.cohorts.roi_import import import_roi_cohort
from semantoks.rule_runner import rule_script

with rule_script(snakemake) as log:
    outputs = import_roi_cohort(
        snakemake.wildcards.cohort,
        snakemake.params.roi,
        snakemake.params.phenotypes,
        snakemake.params.out_dir,
        templateflow_home=snakemake.params.templateflow_home,
    )
    log.info("%d scans imported", len(outputs))
