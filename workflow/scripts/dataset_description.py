from pathlib import Path

from semantoks import __version__
from semantoks.dataset import write_dataset_description
from semantoks.rule_runner import rule_script

with rule_script(snakemake):
    write_dataset_description(Path(snakemake.output.dataset).parent, __version__, name="semantoks dataset")
    write_dataset_description(Path(snakemake.output.timeseries).parent, __version__, name="semantoks parcel time series")
