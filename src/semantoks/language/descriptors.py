"""Per-scan descriptors of four families, z-scored against a reference fitted on training subjects only.

Families: network FC (`fc.A--B`), gradients (`gradient.range.k`, `gradient.position.N`), graph metrics
(`graph.efficiency|modularity|clustering`, `graph.strength.N`) and network dynamics (`dynamics.<m>.N`).
"""

import hashlib
import itertools
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from semantoks.atomic import atomic_path, write_json, write_table_tsv
from semantoks.dataset import iter_scans, read_atlas_metadata, scan_index
from semantoks.errors import SemantoksError
from semantoks.features.connectivity import fisher_z_connectivity, network_fc_names, network_means, network_membership
from semantoks.features.dynamics import network_series
from semantoks.language import measures
from semantoks.language.descriptor_texts import N_VARIANTS, scan_texts, seeded_variant
from semantoks.language.split import language_split
from semantoks.probes.labels import subject_key

FAMILIES = ("fc", "gradient", "graph", "dynamics")
DYNAMICS = ("amplitude", "sd", "spectral_ratio", "autocorr", "outliers", "falff")
MIN_REFERENCE_SUBJECTS = 3
KEY_COLUMNS = ["cohort", "scan_id", "subject", "session"]


@dataclass
class ScanMeasures:
    """One scan's raw descriptors (gradient ones filled after alignment) and its unaligned gradients."""

    key: dict
    values: dict
    gradients: np.ndarray
    omitted: list = field(default_factory=list)


def fc_names(networks):
    return [f"fc.{name}" for name in network_fc_names(networks)]


def scan_measures(data, tr, parcel_network, networks, seed=0):
    """Raw descriptors of one scan [n_frames, n_parcels]; raises SemantoksError if it is too short."""
    data = np.asarray(data, dtype=np.float64)
    problem = measures.spectral_problem(data.shape[0], tr)
    if problem:
        raise SemantoksError(problem)
    member = network_membership(parcel_network, networks)
    z, usable = fisher_z_connectivity(data)
    values = dict(zip(fc_names(networks), network_means(z, usable, member)[np.triu_indices(len(networks))]))
    affinity = np.zeros_like(z)
    affinity[np.ix_(usable, usable)] = measures.connected_gradient_affinity(z[np.ix_(usable, usable)])[0]
    gradients, _ = measures.diffusion_map(affinity)
    weights = measures.proportional_threshold(np.abs(np.tanh(z[np.ix_(usable, usable)])))
    values["graph.efficiency"] = measures.global_efficiency(weights)
    values["graph.modularity"] = measures.louvain_modularity(weights, seed)
    values["graph.clustering"] = measures.weighted_clustering(weights)
    strength = np.full(len(usable), np.nan)
    strength[usable] = weights.sum(axis=1)
    omitted = []
    mean_series = network_series(data, parcel_network, networks)
    for n, network in enumerate(networks):
        parcels = (member[n] > 0) & usable
        values[f"graph.strength.{network}"] = float(strength[parcels].mean()) if parcels.any() else np.nan
        series = mean_series[network]
        found = measures.dynamics(series, tr) if series is not None else dict.fromkeys(DYNAMICS, np.nan)
        for name in DYNAMICS:
            values[f"dynamics.{name}.{network}"] = found[name]
        if not parcels.any():
            omitted.append({"network": network, "reason": "no parcel with a usable (non-NaN, non-constant) signal"})
    return values, gradients, affinity, omitted


def gradient_values(aligned, member, networks):
    """Range of each aligned gradient across parcels and the mean of gradient 1 within each network."""
    values = {}
    for k in range(aligned.shape[1]):
        column = aligned[:, k]
        finite = np.isfinite(column)
        values[f"gradient.range.{k + 1}"] = float(column[finite].max() - column[finite].min()) if finite.any() else np.nan
    for n, network in enumerate(networks):
        position = aligned[member[n] > 0, 0]
        position = position[np.isfinite(position)]
        values[f"gradient.position.{network}"] = float(position.mean()) if position.size else np.nan
    return values


@dataclass
class ZReference:
    """Mean and SD of every descriptor over the training subjects' scans, and their group gradients."""

    names: list
    mean: np.ndarray
    sd: np.ndarray
    subjects: list
    n_scans: int
    gradients: np.ndarray

    @classmethod
    def fit(cls, table, subjects, group_gradients):
        """Fit on the rows of `table` (key columns + descriptors) whose `cohort/subject` is in `subjects`."""
        subjects = sorted(set(subjects))
        rows = table[_subject_keys(table).isin(subjects)]
        present = sorted(set(_subject_keys(rows)))
        if len(present) < MIN_REFERENCE_SUBJECTS:
            raise SemantoksError(
                f"language.reference: {len(present)} training subject(s) have usable scans but the z-reference "
                f"needs at least {MIN_REFERENCE_SUBJECTS}; add subjects or lower language.test_size."
            )
        names = [c for c in table.columns if c not in KEY_COLUMNS]
        values = rows[names].to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(values, axis=0) if len(values) else np.full(len(names), np.nan)
            sd = np.nanstd(values, axis=0, ddof=1)
        return cls(names, mean, sd, present, int(len(rows)), np.asarray(group_gradients, dtype=np.float64))

    def z(self, table):
        """z-scores [n_scans, n_descriptors]; a descriptor with zero spread in the reference gets z = 0."""
        values = table[self.names].to_numpy(dtype=np.float64)
        spread = np.where(self.sd > 0, self.sd, np.nan)
        z = (values - self.mean) / spread
        return np.where(np.isfinite(values) & ~(self.sd > 0), 0.0, z)

    def to_record(self):
        return {"names": self.names, "mean": _floats(self.mean), "sd": _floats(self.sd), "subjects": self.subjects,
                "n_scans": self.n_scans, "gradients": [_floats(row) for row in self.gradients]}

    @classmethod
    def from_record(cls, record):
        return cls(record["names"], _array(record["mean"]), _array(record["sd"]), record["subjects"],
                   record["n_scans"], np.array([_array(row) for row in record["gradients"]]))

    def identity(self):
        """sha256 of the reference record: what a head trained on these texts must match."""
        return hashlib.sha256(json.dumps(self.to_record(), sort_keys=True).encode()).hexdigest()


def describe_scans(scans, parcel_network, networks, train_subjects, seed=0, processes=1):
    """(raw table, ZReference, skipped list, omitted list) for an iterable of dataset Scans.

    Gradients are aligned to the diffusion map of the training scans' mean affinity, so test scans
    never shape the reference; Louvain uses `seed` for every scan. `processes` > 1 measures scans in a pool.
    """
    train = set(train_subjects)
    member = network_membership(parcel_network, networks)
    kept, skipped, omitted = [], [], []
    affinity_sum = np.zeros((len(parcel_network), len(parcel_network)))
    n_train = 0
    for scan, found in _measured(scans, parcel_network, networks, seed, processes):
        key = {"cohort": scan.cohort, "scan_id": scan.scan_id, "subject": scan.subject, "session": scan.session}
        if isinstance(found, str):
            skipped.append({**key, "reason": found})
            continue
        values, gradients, affinity, scan_omitted = found
        omitted += [{**key, **item} for item in scan_omitted]
        if subject_key(scan.cohort, scan.subject) in train:
            affinity_sum += affinity
            n_train += 1
        kept.append(ScanMeasures(key, values, gradients, scan_omitted))
    group = measures.diffusion_map(affinity_sum / max(n_train, 1))[0]
    rows = []
    for item in kept:
        aligned = measures.procrustes_align(item.gradients, group)
        rows.append({**item.key, **item.values, **gradient_values(aligned, member, networks)})
    table = pd.DataFrame(rows, columns=KEY_COLUMNS + _descriptor_names(networks))
    reference = ZReference.fit(table, train, group)
    return table, reference, skipped, omitted


def _measure_one(args):
    """scan_measures of one (data, tr, ...) tuple, or the reason it cannot be measured (pool-friendly)."""
    try:
        return scan_measures(*args)
    except SemantoksError as error:
        return str(error)


_BLAS_LIMIT = None


def _one_blas_thread():
    """Pool initializer: the workers already share the cores, so BLAS threads of their own only fight over them."""
    global _BLAS_LIMIT
    _BLAS_LIMIT = threadpool_limits(1)  # kept for the worker's lifetime (4x faster with 2 workers on 2 cores)


def measure_pool(processes):
    """The process pool that measures scans, one BLAS thread per worker."""
    return ProcessPoolExecutor(processes, initializer=_one_blas_thread)


def _measured(scans, parcel_network, networks, seed, processes, chunk=16):
    """(scan, measures or skip reason) in scan order, a chunk of scans at a time."""
    pool = measure_pool(processes) if processes > 1 else None
    try:
        batch = []
        for scan in itertools.chain(scans, [None]):
            if scan is not None:
                if scan.data.shape[1] != len(parcel_network):
                    raise SemantoksError(f"scan {scan.scan_id} of cohort {scan.cohort}: {scan.data.shape[1]} parcels "
                                         f"but the atlas lists {len(parcel_network)}; rebuild the dataset with one atlas.")
                batch.append(scan)
            if batch and (scan is None or len(batch) == chunk * max(processes, 1)):
                args = [(np.asarray(s.data), s.tr, parcel_network, networks, seed) for s in batch]
                yield from zip(batch, pool.map(_measure_one, args) if pool else map(_measure_one, args))
                batch = []
    finally:
        if pool:
            pool.shutdown()


def _descriptor_names(networks):
    names = fc_names(networks)
    names += [f"gradient.range.{k + 1}" for k in range(measures.N_GRADIENTS)]
    names += [f"gradient.position.{n}" for n in networks]
    names += ["graph.efficiency", "graph.modularity", "graph.clustering"]
    names += [f"graph.strength.{n}" for n in networks]
    names += [f"dynamics.{m}.{n}" for m in DYNAMICS for n in networks]
    return names


def _subject_keys(table):
    return pd.Series([subject_key(c, s) for c, s in zip(table["cohort"], table["subject"])], index=table.index,
                     dtype=object)


def _floats(values):
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, dtype=np.float64)]


def _array(values):
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def texts_table(table, reference, networks, omitted, seed=0):
    """Long table of texts: key columns, level (scan|network), unit, variant (0 canonical), augment, text."""
    z = reference.z(table)
    dropped = {}
    for item in omitted:
        dropped.setdefault((item["cohort"], item["scan_id"]), set()).add(item["network"])
    rows = []
    for i, key in enumerate(table[KEY_COLUMNS].to_dict("records")):
        skip = dropped.get((key["cohort"], key["scan_id"]), set())
        for variant in range(N_VARIANTS):
            for unit, text in scan_texts(z[i], reference.names, networks, skip, variant).items():
                rows.append({**key, "level": "scan" if unit in FAMILIES else "network", "unit": unit,
                             "variant": variant, "augment": variant == seeded_variant(seed, key["scan_id"], unit),
                             "text": text})
    return pd.DataFrame(rows, columns=KEY_COLUMNS + ["level", "unit", "variant", "augment", "text"])


def describe_dataset(dataset_root, atlas_id, cohorts, out_dir, test_size=0.2, seed=0, train_subjects=None,
                     processes=1):
    """Write descriptors.parquet, texts.parquet, reference.json and skipped.tsv under `out_dir`.

    The training subjects default to the language split of every scanned subject (`test_size`, `seed`).
    """
    metadata = read_atlas_metadata(dataset_root, atlas_id)
    parcel_network = [label["network"] for label in metadata["labels"]]
    networks = list(metadata["networks"])
    index = scan_index(dataset_root, atlas_id, cohorts)
    train, test = language_split(index["cohort"], index["subject"], test_size, seed)
    if train_subjects is not None:
        train = sorted(set(train_subjects))
        test = sorted(set(subject_key(c, s) for c, s in zip(index["cohort"], index["subject"])) - set(train))
    scans = iter_scans(dataset_root, atlas_id, cohorts, columns=("timeseries",))
    table, reference, skipped, omitted = describe_scans(scans, parcel_network, networks, train, seed, processes)
    texts = texts_table(table, reference, networks, omitted, seed)
    z = pd.DataFrame(reference.z(table), columns=[f"z:{name}" for name in reference.names])
    out = Path(out_dir)
    _write_parquet(out / "descriptors.parquet", pd.concat([table, z], axis=1))
    _write_parquet(out / "texts.parquet", texts)
    write_table_tsv(out / "skipped.tsv", pd.DataFrame(skipped, columns=KEY_COLUMNS + ["reason"]))
    record = {"identity": reference.identity(), "atlas_id": atlas_id, "networks": networks, "seed": int(seed),
              "split": {"train": train, "test": test}, "reference": reference.to_record(),
              "omitted_networks": omitted, "n_scans": int(len(table)), "n_skipped": len(skipped)}
    write_json(out / "reference.json", record)
    return record


def read_reference(path):
    """(record, ZReference) of a reference.json written by describe_dataset."""
    if not Path(path).is_file():
        raise SemantoksError(f"{path}: descriptor reference not found; run the descriptors stage first.")
    record = json.loads(Path(path).read_text())
    return record, ZReference.from_record(record["reference"])


def _write_parquet(path, frame):
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
