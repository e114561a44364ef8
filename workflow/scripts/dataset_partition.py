from pathlib import Path

from semantoks import __version__
from semantoks.atlas import read_labels_tsv
from semantoks.cohorts.roi_import import read_import_index
from semantoks.provenance import config_hash
from semantoks.confounds import resolve_strategy
from semantoks.dataset import build_partition
from semantoks.rule_runner import rule_script

with rule_script(snakemake) as log:
    imported = "roi" in snakemake.input.keys()
    if imported:
        # exactly the scans of the current source files, as listed by the import
        runs = read_import_index(snakemake.input.roi)
    else:
        runs = list(zip(snakemake.input.timeseries, snakemake.input.qc))
    out_root = Path(snakemake.output.timeseries).parents[3]
    summary = build_partition(
        runs,
        out_root,
        cohort=snakemake.wildcards.cohort,
        atlas_id=snakemake.params.atlas_id,
        labels=read_labels_tsv(snakemake.input.labels),
        space=snakemake.params.space,
        strategy=resolve_strategy(snakemake.params.strategy["strategy"], snakemake.params.strategy["overrides"]),
        pipeline_version=__version__,
        # recorded, not a param: an edit elsewhere in the config must not rebuild the dataset
        config_hash=config_hash(snakemake.config),
        written_by="import_roi_timeseries" if imported else "parcellate_run",
    )
    log.info("%s", summary)
