"""The per-run QC record and its two files (time-series Parquet + `_qc.json`), one writer for every source.

Parcellated runs, runs found unusable before reading and imported ROI time series all go through
`run_record` and `write_run_outputs`, so the dataset stage reads one shape and takes each run's provenance
(`strategy`: the denoising preset, or `imported` for ROI series) from the run itself.
"""

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from semantoks.atomic import atomic_path, write_json
from semantoks.bids_names import scan_id

IMPORTED = "imported"
# a scan with fewer of its parcels measured (finite, varying) is not imported, kept in the dataset, trained on or encoded
MIN_VALID_PARCEL_FRACTION = 0.5


def run_record(cohort, entities, *, space, atlas, strategy, n_parcels, tr=math.nan, n_volumes=0, n_dummy=0,
               n_frames=0, mean_fd=math.nan, max_fd=math.nan, pct_censored=math.nan, included=False, reason=None,
               parcel_coverage=None, source="", min_coverage=None, n_uncovered_parcels=None, n_nonfinite_values=None):
    """The QC record of one run (a JSON-ready dict); `entities` holds sub, task and optional ses, run."""
    coverage = [0.0] * n_parcels if parcel_coverage is None else [round(float(c), 6) for c in parcel_coverage]
    return {
        "cohort": cohort, "subject": entities["sub"], "session": entities.get("ses"), "task": entities.get("task"),
        "run": entities.get("run"), "scan_id": scan_id(entities), "space": space, "atlas": atlas,
        "strategy": strategy, "tr": tr, "n_volumes": int(n_volumes), "n_dummy": int(n_dummy),
        "n_frames": int(n_frames), "mean_fd": mean_fd, "max_fd": max_fd, "pct_censored": pct_censored,
        "included": bool(included), "reason": reason, "parcel_coverage": coverage, "source_bold": str(source),
        "min_coverage": None if min_coverage is None else float(min_coverage),
        "n_uncovered_parcels": None if n_uncovered_parcels is None else int(n_uncovered_parcels),
        "n_nonfinite_values": None if n_nonfinite_values is None else int(n_nonfinite_values),
    }


def write_run_outputs(out_parquet, out_qc, frames, data, names, record, metadata=None):
    """`data` [n_frames, n_parcels] as float32 columns named `names` (+ `frame`), and the record as JSON."""
    arrays = [pa.array(np.asarray(frames, dtype=np.int32))]
    arrays += [pa.array(np.asarray(data[:, i], dtype=np.float32)) for i in range(len(names))]
    stored = {**record, "atlas_id": record["atlas"], "parcel_names": list(names), **(metadata or {})}
    schema = pa.schema([pa.field("frame", pa.int32())] + [pa.field(str(name), pa.float32()) for name in names],
                       metadata={"semantoks": json.dumps(stored)})
    with atomic_path(out_parquet) as tmp:
        pq.write_table(pa.Table.from_arrays(arrays, schema=schema), tmp)
    write_json(out_qc, record)
    return out_parquet, out_qc
