from pathlib import Path

from semantoks import __version__
from semantoks.atlas import read_labels_tsv
from semantoks.config import config_hash
from semantoks.confounds import resolve_strategy
from semantoks.dataset import build_partition
from semantoks.rule_runner import rule_script

with rule_script(snakemake) as log:
    if "roi" in snakemake.input.keys():
        qc_files = sorted(Path(snakemake.params.roi_dir).rglob("*_qc.json"))
        runs = [(str(q).replace("_qc.json", "_timeseries.parquet"), str(q)) for q in qc_files]
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
    )
    log.info("%s", summary)
