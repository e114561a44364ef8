"""Where the consolidated dataset's files live and what their columns are (docs/design.md)."""

import re
from pathlib import Path

import pyarrow as pa

from semantoks.errors import SemantoksError

METADATA_KEY = b"semantoks"
PART_NAME = "part-0.parquet"

# NaN, not null, marks a parcel outside the mask; non-nullable values decode ~40% faster
_FLOATS = pa.list_(pa.field("element", pa.float32(), nullable=False))
TIMESERIES_SCHEMA = pa.schema(
    [
        pa.field("scan_id", pa.string(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("session", pa.string()),
        pa.field("task", pa.string()),
        pa.field("run", pa.string()),
        pa.field("tr", pa.float32(), nullable=False),
        pa.field("n_frames", pa.int32(), nullable=False),
        pa.field("n_parcels", pa.int32(), nullable=False),
        pa.field("timeseries", _FLOATS, nullable=False),
        pa.field("parcel_coverage", _FLOATS, nullable=False),
    ]
)
# the per-scan columns small enough to read for every scan when building splits and indexes
SCAN_KEY_COLUMNS = ["scan_id", "subject", "session", "task", "run", "tr", "n_frames", "n_parcels"]
PAYLOAD_COLUMNS = ("timeseries", "parcel_coverage")

MANIFEST_SCHEMA = pa.schema(
    [
        ("scan_id", pa.string()),
        ("subject", pa.string()),
        ("session", pa.string()),
        ("task", pa.string()),
        ("run", pa.string()),
        ("tr", pa.float32()),
        ("n_volumes", pa.int32()),
        ("n_frames", pa.int32()),
        ("mean_fd", pa.float64()),
        ("pct_censored", pa.float64()),
        ("n_uncovered_parcels", pa.int32()),
        ("included", pa.bool_()),
        ("reason", pa.string()),
        # the source file and a hash of the values (dataset/fingerprint.py): duplicates across cohorts are found
        ("source", pa.string()),
        ("n_nonfinite_values", pa.int64()),
        ("fingerprint", pa.string()),
    ]
)

# typed explicitly so a cohort called "2" stays a string instead of being inferred as an integer
HIVE_FIELDS = {
    "timeseries": pa.schema([("atlas", pa.string()), ("cohort", pa.string())]),
    "manifest": pa.schema([("atlas", pa.string()), ("cohort", pa.string())]),
    "phenotypes": pa.schema([("cohort", pa.string())]),
}

_PARTITION_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def check_partition_value(kind, value):
    """Atlas ids and cohort names become directory names, so they must be plain words."""
    if not isinstance(value, str) or not _PARTITION_VALUE.match(value):
        raise SemantoksError(
            f"{kind} name {value!r} cannot name a dataset folder; use letters, digits, '-' or '_' only."
        )
    return value


def partition_dir(root, kind, atlas_id=None, cohort=None):
    path = Path(root) / kind
    if atlas_id is not None:
        path = path / f"atlas={atlas_id}"
    return path / f"cohort={cohort}"


def part_files(root, kind, atlas_id=None, cohorts=None):
    """The Parquet parts of one kind, optionally restricted to an atlas and to cohorts, sorted."""
    base = Path(root) / kind
    atlas_glob = "" if kind == "phenotypes" else f"atlas={atlas_id if atlas_id else '*'}/"
    files = sorted(base.glob(f"{atlas_glob}cohort=*/*.parquet"))
    files = [f for f in files if not f.name.startswith((".", "_"))]
    if cohorts is not None:
        wanted = {str(c) for c in cohorts}
        files = [f for f in files if f.parent.name.removeprefix("cohort=") in wanted]
    return files


def cohort_of(path):
    return Path(path).parent.name.removeprefix("cohort=")
