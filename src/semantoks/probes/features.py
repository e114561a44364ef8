"""Feature sets for the probes: full and network-level functional connectivity, and frozen embeddings.

Every feature set is `(meta, X)`: `meta` a DataFrame with `cohort, scan_id, subject` (and `session`
where known; one row per scan) and `X` a float64 array with one row per scan in the same order. On
disk a feature set has the embeddings layout (docs/design.md), whether it holds embeddings or FC.

Connectivity convention: Pearson correlation over the kept frames, Fisher-z (`arctanh`, with r
clipped to +-R_CLIP so identical signals stay finite). A parcel outside the scan's mask (a NaN
column) or with a constant signal has no defined correlation: every edge touching it is set to 0
(z = 0, "no connectivity") so all scans of an atlas keep the same feature columns. Network-level
features average only the edges that are defined, and are 0 where a block has none.
"""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from semantoks.atomic import atomic_path
from semantoks.errors import SemantoksError

META_COLUMNS = ["cohort", "scan_id", "subject"]
R_CLIP = 0.999999


def fisher_z_connectivity(data):
    """Fisher-z correlation matrix of a [n_frames, n_parcels] series and the mask of usable parcels."""
    data = np.asarray(data, dtype=np.float64)
    centred = data - data.mean(axis=0)
    scale = np.sqrt((centred**2).sum(axis=0))
    usable = np.isfinite(scale) & (scale > 0)
    unit = np.where(usable, centred / np.where(usable, scale, 1.0), 0.0)
    corr = np.clip(unit.T @ unit, -R_CLIP, R_CLIP)
    z = np.arctanh(corr)
    z[~usable, :] = 0.0
    z[:, ~usable] = 0.0
    return z, usable


def _scan_meta(scan):
    return {"cohort": scan.cohort, "scan_id": scan.scan_id, "subject": scan.subject, "session": scan.session}


def connectivity_features(scans):
    """Full FC: the strict upper triangle of each scan's Fisher-z matrix, row-major."""
    meta, rows = [], []
    for scan in scans:
        z, _ = fisher_z_connectivity(scan.data)
        rows.append(z[np.triu_indices(z.shape[0], k=1)])
        meta.append(_scan_meta(scan))
    return _stack(meta, rows)


def network_connectivity_features(scans, parcel_network):
    """Mean Fisher-z within and between networks: the upper triangle incl. diagonal of networks x networks."""
    networks = list(dict.fromkeys(parcel_network))
    member = np.array([[net == name for net in parcel_network] for name in networks], dtype=np.float64)
    meta, rows = [], []
    for scan in scans:
        z, usable = fisher_z_connectivity(scan.data)
        if z.shape[0] != member.shape[1]:
            raise SemantoksError(
                f"scan {scan.scan_id}: has {z.shape[0]} parcels but the atlas table lists {member.shape[1]}; "
                "use the labels.tsv of the atlas the dataset was built with."
            )
        rows.append(_network_means(z, usable, member))
        meta.append(_scan_meta(scan))
    return _stack(meta, rows)


def network_feature_names(parcel_network):
    """Column names `A--B` for the network-level features, in feature order."""
    networks = list(dict.fromkeys(parcel_network))
    upper = np.triu_indices(len(networks))
    return [f"{networks[i]}--{networks[j]}" for i, j in zip(*upper)]


def _network_means(z, usable, member):
    valid = member * usable[None, :]
    # pairs of distinct usable parcels: the diagonal of z is a parcel with itself, not an edge
    edge = np.outer(usable, usable).astype(np.float64)
    np.fill_diagonal(edge, 0.0)
    sums = valid @ (z * edge) @ valid.T
    counts = valid @ edge @ valid.T
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    return means[np.triu_indices(means.shape[0])]


def _stack(meta, rows):
    frame = pd.DataFrame(meta, columns=META_COLUMNS + ["session"])
    width = len(rows[0]) if rows else 0
    return frame, np.asarray(rows, dtype=np.float64).reshape(len(rows), width)


def load_embeddings(path):
    """Read an embeddings Parquet (one row per scan, `embedding` fixed_size_list<float32>)."""
    table = pq.read_table(path)
    missing = [column for column in META_COLUMNS + ["embedding"] if column not in table.column_names]
    if missing:
        raise SemantoksError(
            f"{path}: lacks column(s) {', '.join(missing)}; rewrite it with `snakemake --cores 2 --forcerun embed`."
        )
    column = table.column("embedding").combine_chunks()
    width = getattr(column.type, "list_size", None)
    if width is None:
        raise SemantoksError(f"{path}: column `embedding` is not a fixed-size list; rewrite it with `snakemake --cores 2 --forcerun embed`.")
    values = column.flatten().to_numpy(zero_copy_only=False)
    X = np.asarray(values, dtype=np.float64).reshape(len(column), width)
    meta = table.select([c for c in META_COLUMNS + ["session"] if c in table.column_names]).to_pandas()
    return meta.astype({column: str for column in META_COLUMNS}), X


def write_feature_set(path, meta, X, metadata=None):
    """Write a feature set in the embeddings layout; `metadata` goes under the schema key `semantoks`."""
    X = np.asarray(X, dtype=np.float32)
    session = meta["session"] if "session" in meta else pd.Series([None] * len(meta))
    columns = {
        "cohort": pa.array(meta["cohort"].astype(str).tolist(), pa.string()),
        "scan_id": pa.array(meta["scan_id"].astype(str).tolist(), pa.string()),
        "subject": pa.array(meta["subject"].astype(str).tolist(), pa.string()),
        "session": pa.array([None if pd.isna(v) else str(v) for v in session], pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel(), pa.float32()), X.shape[1]),
    }
    table = pa.table(columns).replace_schema_metadata({"semantoks": json.dumps(metadata or {})})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def align_feature_sets(feature_sets):
    """Keep scans with finite features in every set, in one shared (cohort, scan_id) order.

    Returns the aligned sets and a record of what was dropped, for the per-phenotype JSON.
    """
    finite, dropped = {}, {}
    for name, (meta, X) in feature_sets.items():
        if len(meta) != len(X):
            raise SemantoksError(f"feature set {name}: {len(meta)} scans but {len(X)} feature rows; rebuild it.")
        keys = list(zip(meta["cohort"], meta["scan_id"]))
        if len(set(keys)) != len(keys):
            raise SemantoksError(f"feature set {name}: a (cohort, scan_id) appears twice; rebuild it.")
        ok = np.isfinite(X).all(axis=1)
        dropped[name] = {"non_finite": int((~ok).sum())}
        finite[name] = (meta[ok].reset_index(drop=True), X[ok])
    shared = None
    for meta, _ in finite.values():
        keys = set(zip(meta["cohort"], meta["scan_id"]))
        shared = keys if shared is None else shared & keys
    order = sorted(shared or [])
    aligned = {}
    for name, (meta, X) in finite.items():
        position = {key: i for i, key in enumerate(zip(meta["cohort"], meta["scan_id"]))}
        rows = np.array([position[key] for key in order], dtype=int)
        dropped[name]["not_in_every_set"] = int(len(meta) - len(rows))
        aligned[name] = (meta.iloc[rows].reset_index(drop=True), X[rows] if len(rows) else X[:0])
    return aligned, dropped
