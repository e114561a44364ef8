from pathlib import Path

from semantoks import __version__
from semantoks.dataset import check_distinct_scans, write_dataset_description
from semantoks.rule_runner import rule_script
from semantoks.workflow_plan import source_datasets

with rule_script(snakemake):
    # the dataset-level step: the same scan under two cohorts stops the build here, naming both files
    check_distinct_scans(Path(snakemake.output.dataset).parent)
    sources, links = source_datasets(snakemake.config)
    for target, name in ((snakemake.output.dataset, "semantoks dataset"), (snakemake.output.timeseries, "semantoks parcel time series")):
        write_dataset_description(Path(target).parent, __version__, name=name, source_datasets=sources, dataset_links=links)
