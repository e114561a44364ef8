"""Thin loaders from the workflow's files into the probes' plain inputs."""

from pathlib import Path

from semantoks.dataset import iter_scans, read_atlas_metadata
from semantoks.errors import SemantoksError
from semantoks.features.registry import compute_feature_table
from semantoks.features.table import read_feature_table
from semantoks.phenotypes import held_out_by_value, read_phenotype_table


def static_feature_set(dataset_root, atlas_id, name, cohorts=None):
    """A registry set computed from time series (`fc`, `network_fc`, `tangent_fc`, `dynamics`) for every included
    scan: (meta, X)."""
    scans = iter_scans(dataset_root, atlas_id, cohorts=cohorts, columns=("timeseries",))
    metadata = read_atlas_metadata(dataset_root, atlas_id)
    parcel_network = [label["network"] for label in metadata["labels"]]
    return compute_feature_table(name, scans, parcel_network, list(metadata["networks"]))


def load_feature_sets(paths):
    """{name: feature-table path} -> {name: (meta, X)}."""
    feature_sets = {}
    for name, path in paths.items():
        if not Path(path).is_file():
            raise SemantoksError(f"{path}: feature set {name!r} is missing; run the features stage first.")
        feature_sets[name] = read_feature_table(path)[:2]
    return feature_sets


def load_phenotypes(dataset_root, cohorts=None, only_held_out=None):
    """The typed phenotype table of the probed cohorts (with `cohort`, `subject`, declared columns).

    `only_held_out` (pretrain.hold_out, {column, values}) keeps just the subjects pretraining never saw.
    """
    table = read_phenotype_table(Path(dataset_root), cohorts)
    if not only_held_out:
        return table
    kept = set(held_out_by_value(table, only_held_out))
    rows = [pair in kept for pair in zip(table["cohort"].astype(str), table["subject"].astype(str))]
    return table[rows].reset_index(drop=True)
