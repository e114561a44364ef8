"""Consolidate one cohort's per-run outputs into a hive partition of the dataset, streaming."""

import datetime
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from semantoks.atomic import atomic_path, write_json, write_table_tsv
from semantoks.cohorts.phenotype_types import refuse_shared_subject_keys
from semantoks.dataset.fingerprint import refuse_duplicate_scans, scan_fingerprint
from semantoks.dataset.layout import (
    MANIFEST_SCHEMA,
    METADATA_KEY,
    PART_NAME,
    TIMESERIES_SCHEMA,
    check_partition_value,
    partition_dir,
)
from semantoks.errors import SemantoksError
from semantoks.run_record import MIN_VALID_PARCEL_FRACTION

# streaming speed is flat from 2 to 64 MB row groups, random access slows with size (benchmarks/RESULTS.md)
DEFAULT_ROW_GROUP_BYTES = 4 * 2**20
# the fix that works per source: Snakemake regenerates a deleted per-run output, but an imported cohort's files
# are listed by its import job, which reruns only when forced (or when its sources change)
RERUN = {"parcellate_run": "delete it and rerun snakemake",
         "import_roi_timeseries": "rerun the import with `snakemake --forcerun import_roi_timeseries`"}
_ENTITY_PREFIXES = {"subject": "sub-", "session": "ses-", "task": "task-", "run": "run-"}


@dataclass
class _Run:
    parquet_path: Path
    qc_path: Path
    qc: dict
    n_rows: int


def build_partition(
    run_outputs,
    out_root,
    cohort,
    atlas_id,
    labels,
    space,
    strategy,
    pipeline_version,
    config_hash,
    row_group_bytes=DEFAULT_ROW_GROUP_BYTES,
    written_by="parcellate_run",
):
    """Write timeseries + manifest partitions of one (atlas, cohort) from (parquet, qc.json) pairs.

    Every input is validated before anything is written; then runs are read one at a time and
    written in row groups of about `row_group_bytes`, so memory stays near a few row groups.
    `written_by` names the rule that wrote the runs (error messages say how to redo them); the partition's
    `strategy` metadata comes from the runs' own records (`imported` for ROI series), not from the config.
    Returns a summary dict (paths, n_scans, n_included).
    """
    rerun = RERUN[written_by]
    check_partition_value("atlas", atlas_id)
    check_partition_value("cohort", cohort)
    label_records = _label_records(labels)
    parcel_names = [row["name"] for row in label_records]
    runs = [_inspect_run(Path(p), Path(q), parcel_names, atlas_id, cohort, rerun) for p, q in run_outputs]
    runs.sort(key=lambda run: run.qc["scan_id"])
    _reject_duplicates(runs)
    refuse_shared_subject_keys(((run.qc["subject"], run.qc_path) for run in runs), f"cohort {cohort}")
    included = [run for run in runs if run.qc["included"]]
    strategy = _runs_strategy(runs, strategy)

    metadata = {
        "atlas_id": atlas_id,
        "space": space,
        "labels": label_records,
        "networks": list(dict.fromkeys(row["network"] for row in label_records)),
        "tr": sorted({float(run.qc["tr"]) for run in included}),
        "strategy": strategy,
        "pipeline_version": pipeline_version,
        "config_hash": config_hash,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "n_scans": len(included),
    }
    encoded = {METADATA_KEY: json.dumps(metadata, default=_jsonable).encode()}
    timeseries_path = partition_dir(out_root, "timeseries", atlas_id, cohort) / PART_NAME
    manifest_dir = partition_dir(out_root, "manifest", atlas_id, cohort)
    schema = TIMESERIES_SCHEMA.with_metadata(encoded)
    with atomic_path(timeseries_path) as timeseries_tmp, atomic_path(manifest_dir / PART_NAME) as manifest_tmp:
        written = _write_timeseries(timeseries_tmp, included, len(parcel_names), schema, row_group_bytes, rerun)
        refuse_duplicate_scans((written[run.qc["scan_id"]][0], f"cohort {cohort}, {run.qc['scan_id']}",
                                _source(run)) for run in included)
        manifest = _manifest_table(runs, written).replace_schema_metadata(encoded)
        pq.write_table(manifest, manifest_tmp)
    frame = manifest.to_pandas()
    frame.insert(0, "cohort", cohort)
    frame.insert(0, "atlas", atlas_id)
    write_table_tsv(manifest_dir / "_manifest.tsv", frame)
    return {
        "timeseries": timeseries_path,
        "manifest": manifest_dir / PART_NAME,
        "n_scans": len(runs),
        "n_included": len(included),
    }


def write_dataset_description(out_root, version, code_url=None, source_datasets=None, name="semantoks dataset",
                              dataset_links=None):
    """The BIDS-derivative `dataset_description.json` at the dataset root."""
    generated_by = {"Name": "semantoks", "Version": str(version)}
    if code_url:
        generated_by["CodeURL"] = code_url
    description = {
        "Name": name,
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [generated_by],
    }
    if source_datasets:
        description["SourceDatasets"] = list(source_datasets)
    if dataset_links:
        description["DatasetLinks"] = dict(dataset_links)
    target = Path(out_root) / "dataset_description.json"
    write_json(target, description)
    return target


def _runs_strategy(runs, configured):
    """Provenance from the runs' own QC records: the configured preset's parameters when the runs were denoised
    with it, else the runs' strategy name (`imported` for ROI time series)."""
    names = sorted({str(run.qc.get("strategy")) for run in runs if run.qc.get("strategy")})
    if len(names) > 1:
        raise SemantoksError(f"{runs[0].qc_path.parent}: runs of one cohort were prepared with different strategies "
                             f"({', '.join(names)}); rerun them with one denoising strategy.")
    if not names or (isinstance(configured, dict) and configured.get("name") == names[0]):
        return configured
    return {"name": names[0]}


def _label_records(labels):
    missing = {"index", "name", "network", "hemisphere"} - set(labels.columns)
    if missing:
        raise ValueError(f"atlas labels lack columns {sorted(missing)}")
    return [
        {"index": int(row["index"]), "name": str(row["name"]), "network": str(row["network"]),
         "hemisphere": str(row["hemisphere"])}
        for row in labels.to_dict(orient="records")
    ]


def _inspect_run(parquet_path, qc_path, parcel_names, atlas_id, cohort, rerun):
    """Read only the QC record and the Parquet footer, and check they fit this partition."""
    try:
        qc = json.loads(qc_path.read_text())
    except FileNotFoundError:
        raise SemantoksError(f"{qc_path}: QC record is missing; {rerun}.") from None
    except json.JSONDecodeError:
        raise SemantoksError(f"{qc_path}: QC record is not valid JSON; {rerun}.") from None
    try:
        footer = pq.read_metadata(parquet_path)
    except FileNotFoundError:
        raise SemantoksError(f"{parquet_path}: time series file is missing; {rerun}.") from None
    except pa.ArrowException:
        raise SemantoksError(f"{parquet_path}: not a readable Parquet file; {rerun}.") from None
    schema = footer.schema.to_arrow_schema()
    if schema.names != ["frame", *parcel_names]:
        raise SemantoksError(
            f"{parquet_path}: its parcel columns are not those of {atlas_id}'s labels table (first: "
            f"{_first_mismatch(schema.names[1:], parcel_names)}); {rerun}."
        )
    if not all(pa.types.is_floating(schema.field(name).type) for name in parcel_names):
        raise SemantoksError(f"{parquet_path}: parcel columns must be float32; {rerun}.")
    qc = _exclude_if_mostly_uncovered(_normalise_qc(qc, qc_path, rerun))
    if qc.get("atlas") not in (None, atlas_id):
        raise SemantoksError(f"{qc_path}: was made with atlas {qc['atlas']}, not {atlas_id}; {rerun}.")
    if qc.get("cohort") not in (None, cohort):
        raise SemantoksError(
            f"{qc_path}: belongs to cohort {qc['cohort']!r}, not {cohort!r}; list it under its own cohort."
        )
    if qc["included"]:
        if footer.num_rows == 0 or footer.num_rows != qc["n_frames"]:
            raise SemantoksError(
                f"{parquet_path}: has {footer.num_rows} frames but its QC record says {qc['n_frames']}; {rerun}."
            )
        if len(qc["parcel_coverage"]) != len(parcel_names):
            raise SemantoksError(f"{qc_path}: parcel_coverage has {len(qc['parcel_coverage'])} values, "
                                 f"the atlas {len(parcel_names)}; {rerun}.")
    return _Run(parquet_path, qc_path, qc, footer.num_rows)


def _exclude_if_mostly_uncovered(qc):
    """A run with fewer than MIN_VALID_PARCEL_FRACTION of its parcels covered is left out with its reason: the
    encoder refuses such a scan, so it must not reach pretraining or the embedding jobs."""
    if not qc["included"] or qc.get("parcel_coverage") is None:
        return qc
    coverage = qc["parcel_coverage"]
    uncovered = max(int(qc.get("n_uncovered_parcels") or 0), sum(1 for value in coverage if not value > 0))
    if coverage and (len(coverage) - uncovered) / len(coverage) < MIN_VALID_PARCEL_FRACTION:
        qc = {**qc, "included": False, "reason": f"Only {len(coverage) - uncovered} of {len(coverage)} parcels are "
              f"covered (at least {MIN_VALID_PARCEL_FRACTION:.0%} are needed)."}
    return qc


def _first_mismatch(found, expected):
    pairs = list(zip(found, expected))
    index = next((i for i, (a, b) in enumerate(pairs) if a != b), len(pairs))
    if index < len(pairs):
        return f"column {index + 1} is {pairs[index][0]!r}, expected {pairs[index][1]!r}"
    return f"{len(found)} parcel columns, expected {len(expected)}"


def _normalise_qc(qc, qc_path, rerun):
    required = ["scan_id", "subject", "task", "included"]
    if qc.get("included"):
        required += ["tr", "n_frames", "parcel_coverage"]
    absent = [key for key in required if qc.get(key) is None]
    if absent:
        raise SemantoksError(f"{qc_path}: QC record lacks {', '.join(absent)}; {rerun}.")
    qc = dict(qc)
    qc["included"] = bool(qc["included"])
    for key, prefix in _ENTITY_PREFIXES.items():
        value = qc.get(key)
        # labels are stored bare ("01"), whichever form the QC record used ("sub-01" or "01")
        qc[key] = None if value is None or value == "" else str(value).removeprefix(prefix)
    if not qc.get("reason"):
        qc["reason"] = None
    return qc


def _reject_duplicates(runs):
    for previous, run in zip(runs, runs[1:]):
        if previous.qc["scan_id"] == run.qc["scan_id"]:
            raise SemantoksError(
                f"{run.qc_path}: scan id {run.qc['scan_id']} is also produced by {previous.qc_path}; "
                "remove one of the two inputs."
            )


def _source(run):
    return run.qc.get("source_bold") or str(run.parquet_path)


def _manifest_table(runs, written):
    def column(key):
        return [run.qc.get(key) for run in runs]

    def number(key):
        # NaN (e.g. no motion estimate) is stored as a missing value
        values = [run.qc.get(key) for run in runs]
        return [None if value is None or (isinstance(value, float) and math.isnan(value)) else value
                for value in values]

    columns = {
        "scan_id": column("scan_id"),
        "subject": column("subject"),
        "session": column("session"),
        "task": column("task"),
        "run": column("run"),
        "tr": number("tr"),
        "n_volumes": number("n_volumes"),
        "n_frames": [run.qc.get("n_frames", run.n_rows) for run in runs],
        "mean_fd": number("mean_fd"),
        "pct_censored": number("pct_censored"),
        "n_uncovered_parcels": number("n_uncovered_parcels"),
        "included": column("included"),
        "reason": column("reason"),
        "source": [_source(run) for run in runs],
        "n_nonfinite_values": [written.get(run.qc["scan_id"], (None, None))[1] for run in runs],
        "fingerprint": [written.get(run.qc["scan_id"], (None, None))[0] for run in runs],
    }
    return pa.Table.from_pydict(columns, schema=MANIFEST_SCHEMA)


def _write_timeseries(target, runs, n_parcels, schema, row_group_bytes, rerun):
    """Stream the runs into row groups; returns {scan_id: (content fingerprint, number of NaN or inf values)}."""
    written = {}
    with pq.ParquetWriter(
        target,
        schema,
        compression="zstd",
        compression_level=1,
        use_byte_stream_split=["timeseries.list.element"],
        use_dictionary=["subject", "session", "task", "run"],
        write_statistics=["scan_id", "subject", "session", "task", "run", "tr", "n_frames"],
    ) as writer:
        pending, pending_bytes = [], 0
        for run in runs:
            data = _read_run_matrix(run, rerun)
            n_nonfinite = int(np.count_nonzero(~np.isfinite(data)))
            # +-inf is a missing value like NaN (readers treat NaN as missing)
            data[np.isinf(data)] = np.nan
            written[run.qc["scan_id"]] = (scan_fingerprint(data), n_nonfinite)
            pending.append((run, data))
            pending_bytes += data.nbytes
            if pending_bytes >= row_group_bytes:
                writer.write_table(_row_group(pending, n_parcels, schema), row_group_size=len(pending))
                pending, pending_bytes = [], 0
        if pending:
            writer.write_table(_row_group(pending, n_parcels, schema), row_group_size=len(pending))
    return written


def _read_run_matrix(run, rerun):
    """One run as a C-ordered float32 [n_frames, n_parcels] matrix (frame-major when flattened)."""
    # ParquetFile.read skips the dataset layer: ~2x faster than pq.read_table on 400-column files
    try:
        with pq.ParquetFile(run.parquet_path) as parquet:
            table = parquet.read(use_threads=False)
    except (OSError, pa.ArrowException) as error:
        raise SemantoksError(f"{run.parquet_path}: cannot be read ({error}); {rerun}.") from error
    parcels = [table.column(i).to_numpy().astype(np.float32, copy=False) for i in range(1, table.num_columns)]
    return np.stack(parcels, axis=1)


def _row_group(pending, n_parcels, schema):
    lengths = np.array([data.size for _, data in pending], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = np.concatenate([data.ravel() for _, data in pending])
    coverage = np.concatenate([np.asarray(run.qc["parcel_coverage"], dtype=np.float32) for run, _ in pending])
    coverage_offsets = np.arange(len(pending) + 1, dtype=np.int32) * n_parcels
    qcs = [run.qc for run, _ in pending]
    columns = [
        pa.array([qc["scan_id"] for qc in qcs], pa.string()),
        pa.array([qc["subject"] for qc in qcs], pa.string()),
        pa.array([qc["session"] for qc in qcs], pa.string()),
        pa.array([qc["task"] for qc in qcs], pa.string()),
        pa.array([qc["run"] for qc in qcs], pa.string()),
        pa.array([qc["tr"] for qc in qcs], pa.float32()),
        pa.array([data.shape[0] for _, data in pending], pa.int32()),
        pa.array([n_parcels] * len(pending), pa.int32()),
        pa.ListArray.from_arrays(pa.array(offsets), pa.array(values), type=schema.field("timeseries").type),
        pa.ListArray.from_arrays(
            pa.array(coverage_offsets), pa.array(coverage), type=schema.field("parcel_coverage").type
        ),
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in the dataset metadata")
