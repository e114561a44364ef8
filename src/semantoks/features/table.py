"""The feature table: one row per scan, key columns + fixed_size_list<float32> `embedding`, one metadata record.

Every per-scan feature file of the pipeline (embeddings, connectivity and dynamics baselines, aligned
projections, code histograms, network tokens) is written and read here, with its provenance record as
JSON under the one schema-metadata key `semantoks`.
"""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from semantoks.atomic import atomic_path
from semantoks.errors import SemantoksError

METADATA_KEY = b"semantoks"
KEY_COLUMNS = ("cohort", "scan_id", "subject", "session")
REQUIRED_COLUMNS = ("cohort", "scan_id", "subject", "embedding")
REWRITE = "rewrite it with `snakemake --cores 2 --forcerun` on the rule that made it"


def write_feature_table(path, keys, X, record=None):
    """Write `keys` (DataFrame with the key columns; `session` optional) and features X [n_scans, F] atomically."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2 or len(X) != len(keys):
        raise SemantoksError(f"{path}: {len(keys)} scans but features of shape {X.shape}; one row per scan is needed.")
    columns = {}
    for name in KEY_COLUMNS:
        values = keys[name] if name in keys else pd.Series([None] * len(keys))
        # pandas turns a missing session into NaN; Parquet keeps it as null
        columns[name] = pa.array([None if pd.isna(v) else str(v) for v in values], pa.string())
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel(), pa.float32()), X.shape[1])
    table = pa.table(columns).replace_schema_metadata({METADATA_KEY: json.dumps(record or {}).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_feature_table(path):
    """(keys DataFrame with string key columns, X [n_scans, F] float64, metadata record) of a feature table."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        reason = str(error).splitlines()[0]
        raise SemantoksError(f"{path}: not a readable feature table ({reason}); {REWRITE}.") from None
    missing = [column for column in REQUIRED_COLUMNS if column not in table.column_names]
    if missing:
        raise SemantoksError(f"{path}: lacks column(s) {', '.join(missing)}; {REWRITE}.")
    column = table.column("embedding").combine_chunks()
    width = getattr(column.type, "list_size", None)
    if width is None:
        raise SemantoksError(f"{path}: column `embedding` is not a fixed-size list; {REWRITE}.")
    values = column.flatten().to_numpy(zero_copy_only=False)
    X = np.asarray(values, dtype=np.float64).reshape(len(column), width)
    keys = table.select([c for c in KEY_COLUMNS if c in table.column_names]).to_pandas()
    keys = keys.astype({column: str for column in ("cohort", "scan_id", "subject")})
    record = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
    return keys, X, record
