from semantoks.atomic import write_table_tsv
from semantoks.cohorts.roi_parcellation import roi_parcel_table
from semantoks.rule_runner import rule_script

with rule_script(snakemake) as log:
    table = roi_parcel_table(
        snakemake.params.roi,
        snakemake.params.cohort,
        templateflow_home=snakemake.params.templateflow_home,
        allow_download=snakemake.params.allow_download,
    )
    write_table_tsv(snakemake.output.labels, table)
    log.info("%d parcels in %d networks", len(table), table["network"].nunique())
