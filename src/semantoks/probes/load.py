"""Thin loaders from the workflow's files into the probes' plain inputs."""

from pathlib import Path

from semantoks.dataset import iter_scans, read_atlas_metadata
from semantoks.errors import SemantoksError
from semantoks.phenotypes import held_out_by_value, read_phenotype_table
from semantoks.probes.features import connectivity_features, load_embeddings, network_connectivity_features

CONNECTIVITY_KINDS = ("fc", "network_fc")


def connectivity_feature_set(dataset_root, atlas_id, kind, cohorts=None):
    """`fc` (full Fisher-z FC) or `network_fc` (network means) for every included scan: (meta, X)."""
    if kind not in CONNECTIVITY_KINDS:
        raise SemantoksError(f"config.yaml: feature set {kind!r} is not a connectivity baseline; use fc or network_fc.")
    scans = iter_scans(dataset_root, atlas_id, cohorts=cohorts, columns=("timeseries",))
    if kind == "fc":
        return connectivity_features(scans)
    networks = [label["network"] for label in read_atlas_metadata(dataset_root, atlas_id)["labels"]]
    return network_connectivity_features(scans, networks)


def load_feature_sets(paths):
    """{name: Parquet path} in the embeddings layout -> {name: (meta, X)}."""
    feature_sets = {}
    for name, path in paths.items():
        if not Path(path).is_file():
            raise SemantoksError(f"{path}: feature set {name!r} is missing; run the features stage first.")
        feature_sets[name] = load_embeddings(path)
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
