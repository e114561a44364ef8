"""Readers of the consolidated dataset: streaming scans, random access by key, indexes, metadata."""

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from semantoks.dataset.fingerprint import refuse_duplicate_scans
from semantoks.dataset.layout import (
    HIVE_FIELDS,
    METADATA_KEY,
    PAYLOAD_COLUMNS,
    SCAN_KEY_COLUMNS,
    cohort_of,
    part_files,
)
from semantoks.errors import SemantoksError

# batches decoded ahead of the consumer: overlaps decoding with use, keeps memory to tens of MB
_READAHEAD_BATCHES = 4
_AGREED_KEYS = ("space", "strategy", "pipeline_version", "config_hash")


@dataclass(frozen=True, eq=False)
class Scan:
    """One scan; `data` is [n_frames, n_parcels] float32, read-only, sharing memory with Arrow."""

    cohort: str
    scan_id: str
    subject: str
    session: str | None
    task: str | None
    run: str | None
    tr: float
    data: np.ndarray | None
    coverage: np.ndarray | None

    @property
    def key(self):
        return (self.cohort, self.scan_id)


def open_timeseries(root, atlas_id=None, cohorts=None):
    """The timeseries partitions as a pyarrow Dataset with `atlas` and `cohort` from the hive path.

    Refuses cohorts that hold the same scan (equal content fingerprints in their manifests): every reader of
    the dataset goes through here, so no split, pretraining or probe sees one person twice.
    """
    dataset = _open(root, "timeseries", atlas_id, cohorts)
    check_distinct_scans(root, atlas_id, cohorts)
    return dataset


def dataset_digest(root, atlas_id, cohorts=None):
    """sha256 of the included scans' content fingerprints (cohort, scan id, values) of these cohorts: equal digests,
    equal data. None when a manifest predates fingerprints."""
    import hashlib

    rows, manifests = [], part_files(root, "manifest", atlas_id, cohorts)
    if not manifests:
        return None
    for path in manifests:
        table = pq.read_table(path, partitioning=None)
        if "fingerprint" not in table.column_names:
            return None
        rows += [(cohort_of(path), row["scan_id"], row["fingerprint"]) for row in
                 table.select(["scan_id", "fingerprint", "included"]).to_pylist() if row["included"]]
    return hashlib.sha256(json.dumps(sorted(rows)).encode()).hexdigest()


def check_distinct_scans(root, atlas_id=None, cohorts=None):
    """One line naming both files when two included scans of these cohorts have the same values."""
    scans = []
    for path in part_files(root, "manifest", atlas_id, cohorts):
        table = pq.read_table(path, partitioning=None)
        if "fingerprint" not in table.column_names:
            continue
        for row in table.select(["scan_id", "source", "fingerprint"]).to_pylist():
            scans.append((row["fingerprint"], f"cohort {cohort_of(path)}, {row['scan_id']}", row["source"]))
    refuse_duplicate_scans(scans)


def iter_scans(root, atlas_id, cohorts=None, batch_size=16, columns=PAYLOAD_COLUMNS, filter=None):
    """Stream scans in file order, a few row groups in memory at a time.

    `columns` picks which of `timeseries` / `parcel_coverage` to read (the other field is None);
    `filter` is an optional pyarrow expression, e.g. `pc.field("subject").isin(train)`.
    """
    payload = _check_payload(columns)
    dataset = open_timeseries(root, atlas_id, cohorts)
    batches = dataset.to_batches(
        columns=["cohort", *SCAN_KEY_COLUMNS, *payload],
        filter=filter,
        batch_size=batch_size,
        batch_readahead=_READAHEAD_BATCHES,
        fragment_readahead=1,
    )
    for batch in batches:
        yield from _scans_from_batch(batch)


def scan_index(root, atlas_id, cohorts=None):
    """One row per scan (cohort, scan_id, subject, session, task, run, n_frames, tr), no time series read."""
    dataset = open_timeseries(root, atlas_id, cohorts)
    columns = ["cohort", "scan_id", "subject", "session", "task", "run", "n_frames", "tr"]
    return dataset.to_table(columns=columns).to_pandas()


def read_scans(root, atlas_id, keys):
    """The scans named by (cohort, scan_id) keys, in the order given; reads only their row groups."""
    keys = list(keys)
    if not keys:
        return []
    return ScanReader(root, atlas_id, cohorts=sorted({cohort for cohort, _ in keys})).read(keys)


class ScanReader:
    """Random access to scans by (cohort, scan_id); build once, then `read` many times (samplers).

    `index` lists the scans file by file (in `files` order), rows in file order, with their row group.
    """

    def __init__(self, root, atlas_id, cohorts=None, columns=PAYLOAD_COLUMNS):
        self.root = Path(root)
        self.atlas_id = atlas_id
        self.payload = _check_payload(columns)
        self.files = {cohort_of(path): path for path in _existing_parts(root, "timeseries", atlas_id, cohorts)}
        self._location = {}
        rows = []
        for cohort, path in self.files.items():
            footer = pq.read_metadata(path)
            starts = np.cumsum([0] + [footer.row_group(i).num_rows for i in range(footer.num_row_groups)])
            index = pq.read_table(path, columns=SCAN_KEY_COLUMNS).to_pandas()
            row_groups = np.searchsorted(starts, np.arange(len(index)), side="right") - 1
            for position, (scan_id, group) in enumerate(zip(index["scan_id"], row_groups)):
                self._location[(cohort, scan_id)] = (int(group), int(position - starts[group]))
            index.insert(0, "cohort", cohort)
            index["row_group"] = row_groups
            rows.append(index)
        self.index = pd.concat(rows, ignore_index=True)
        self._open_files, self._pid = {}, None

    def read(self, keys):
        """Scans for the keys, in order; each needed row group is decoded once per call."""
        keys = [tuple(key) for key in keys]
        wanted = defaultdict(list)
        for key in keys:
            if key not in self._location:
                raise SemantoksError(
                    f"{self.root}: scan {key[1]} of cohort {key[0]} is not in the {self.atlas_id} time series; "
                    "check the key against scan_index()."
                )
            wanted[(key[0], self._location[key][0])].append(key)
        found = {}
        for (cohort, group), group_keys in wanted.items():
            batch = self._parquet(cohort).read_row_group(group, columns=SCAN_KEY_COLUMNS + self.payload)
            scans = _scans_from_batch(batch, cohort)
            for key in group_keys:
                found[key] = scans[self._location[key][1]]
        return [found[key] for key in keys]

    def _parquet(self, cohort):
        # file handles must not be shared with forked data-loader workers
        if self._pid != os.getpid():
            self._open_files, self._pid = {}, os.getpid()
        if cohort not in self._open_files:
            self._open_files[cohort] = pq.ParquetFile(self.files[cohort])
        return self._open_files[cohort]


def read_manifest(root, atlas_id=None, cohorts=None):
    """Every scan, included or not, with its QC values and reason; `atlas` and `cohort` columns first."""
    table = _open(root, "manifest", atlas_id, cohorts).to_table()
    frame = table.to_pandas()
    return frame[["atlas", "cohort", *[name for name in frame.columns if name not in ("atlas", "cohort")]]]


def read_manifest_file(path):
    """One manifest part (`manifest/atlas=<id>/cohort=<c>/part-0.parquet`) as a DataFrame."""
    if not Path(path).is_file():
        raise SemantoksError(f"{path}: manifest not found; build the dataset partition first.")
    return pq.read_table(path, partitioning=None).to_pandas()


def read_atlas_metadata(root, atlas_id):
    """The atlas' schema metadata, merged over cohorts; errors if cohorts disagree on the parcels.

    `tr` is the union of the cohorts' TRs; `space`, `strategy`, `pipeline_version` and
    `config_hash` are None where cohorts disagree; `cohorts` maps each cohort to its own record.
    """
    per_cohort = {}
    for path in _existing_parts(root, "timeseries", atlas_id, None):
        raw = pq.read_schema(path).metadata or {}
        if METADATA_KEY not in raw:
            raise SemantoksError(f"{path}: has no semantoks metadata; rebuild the dataset.")
        per_cohort[cohort_of(path)] = (path, json.loads(raw[METADATA_KEY]))
    (first_path, first), *others = per_cohort.values()
    for path, record in others:
        if record["labels"] != first["labels"]:
            raise SemantoksError(
                f"{path}: its {atlas_id} parcels differ from those in {first_path}; "
                "rebuild the older partition with the current atlas."
            )
    merged = {"atlas_id": atlas_id, "labels": first["labels"], "networks": first["networks"]}
    merged["tr"] = sorted({tr for _, record in per_cohort.values() for tr in record["tr"]})
    for key in _AGREED_KEYS:
        values = [json.dumps(record.get(key), sort_keys=True) for _, record in per_cohort.values()]
        merged[key] = first.get(key) if len(set(values)) == 1 else None
    merged["n_scans"] = sum(record["n_scans"] for _, record in per_cohort.values())
    merged["cohorts"] = {cohort: record for cohort, (_, record) in per_cohort.items()}
    return merged


def _open(root, kind, atlas_id, cohorts):
    files = _existing_parts(root, kind, atlas_id, cohorts)
    return ds.dataset(
        [str(path) for path in files],
        format="parquet",
        partitioning=ds.partitioning(HIVE_FIELDS[kind], flavor="hive"),
        partition_base_dir=str(Path(root) / kind),
    )


def _existing_parts(root, kind, atlas_id, cohorts):
    files = part_files(root, kind, atlas_id, cohorts)
    if not files:
        wanted = f"atlas {atlas_id or 'any'}, cohorts {', '.join(map(str, cohorts)) if cohorts else 'any'}"
        raise SemantoksError(f"{Path(root) / kind}: no {kind} partitions for {wanted}; build the dataset first.")
    return files


def _check_payload(columns):
    columns = [columns] if isinstance(columns, str) else list(columns)
    unknown = sorted(set(columns) - set(PAYLOAD_COLUMNS))
    if unknown:
        raise ValueError(f"unknown payload columns {unknown}; choose from {list(PAYLOAD_COLUMNS)}")
    return columns


def _scans_from_batch(batch, cohort=None):
    """Scans of a record batch; the matrices are views of the batch's flat float32 buffer."""
    names = batch.schema.names
    meta = {name: batch.column(name).to_pylist() for name in SCAN_KEY_COLUMNS}
    cohorts = batch.column("cohort").to_pylist() if "cohort" in names else [cohort] * batch.num_rows
    timeseries = _list_rows(batch.column("timeseries")) if "timeseries" in names else None
    coverage = _list_rows(batch.column("parcel_coverage")) if "parcel_coverage" in names else None
    scans = []
    for i in range(batch.num_rows):
        n_frames, n_parcels = meta["n_frames"][i], meta["n_parcels"][i]
        data = None
        if timeseries is not None:
            data = timeseries(i)
            if data.size != n_frames * n_parcels:
                raise SemantoksError(f"scan {meta['scan_id'][i]} of cohort {cohorts[i]}: time series length "
                                     "does not match n_frames x n_parcels; rebuild the dataset.")
            data = data.reshape(n_frames, n_parcels)
        scans.append(
            Scan(
                cohort=cohorts[i],
                scan_id=meta["scan_id"][i],
                subject=meta["subject"][i],
                session=meta["session"][i],
                task=meta["task"][i],
                run=meta["run"][i],
                tr=_float32_value(meta["tr"][i]),
                data=data,
                coverage=coverage(i) if coverage is not None else None,
            )
        )
    return scans


def _list_rows(column):
    """A function i -> row i of a list<float32> column as a zero-copy numpy view."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    offsets = column.offsets.to_numpy()
    values = column.values
    flat = values.to_numpy(zero_copy_only=values.null_count == 0, writable=False)
    return lambda i: flat[offsets[i]:offsets[i + 1]]


def _float32_value(value):
    # the shortest decimal that is this float32 (0.72, not 0.7200000286102295)
    return None if value is None else float(str(np.float32(value)))
