"""The consolidated dataset: hive-partitioned time series, manifest, streaming and random-access readers."""

from semantoks.dataset.build import DEFAULT_ROW_GROUP_BYTES, build_partition, write_dataset_description
from semantoks.dataset.read import (
    Scan,
    ScanReader,
    check_distinct_scans,
    dataset_digest,
    iter_scans,
    open_timeseries,
    read_atlas_metadata,
    read_manifest,
    read_manifest_file,
    read_scans,
    scan_index,
)

__all__ = [
    "DEFAULT_ROW_GROUP_BYTES",
    "Scan",
    "ScanReader",
    "build_partition",
    "check_distinct_scans",
    "dataset_digest",
    "iter_scans",
    "open_timeseries",
    "read_atlas_metadata",
    "read_manifest",
    "read_manifest_file",
    "read_scans",
    "scan_index",
    "write_dataset_description",
]
