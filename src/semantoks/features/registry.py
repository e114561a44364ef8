"""The one registry of probe feature sets: what each is, which rule writes it, how its rows are computed.

Everything else is built from it: the Snakemake wildcard constraints of the feature rules, the schema enum
of `probe.feature_sets` (checked by a test), the baselines of the paired tests and the table in
docs/probes.md (checked by a test). Adding a feature set is one entry here plus its row function and test.
"""

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pandas as pd

from semantoks.errors import SemantoksError
from semantoks.features import connectivity, dynamics


@dataclass(frozen=True)
class FeatureSet:
    """One probe feature set.

    `rule` writes its file `features/<name>.parquet` (None: fused, built in the probe from `parts`);
    `row(data, tr, parcel_network, networks)` computes one scan's stored row for the static tables; `fold(train, test)`
    turns stored rows into features with statistics fitted on a split's training scans only; `baseline`
    marks the sets every other set is paired against; `needs_model` the sets that need pretraining;
    `per_seed` the model-derived sets that are made once per pretraining seed.
    """

    name: str
    description: str
    rule: Optional[str] = None
    row: Optional[Callable] = None
    parts: tuple = ()
    fold: Optional[Callable] = None
    baseline: bool = False
    needs_model: bool = False
    per_seed: bool = False

    @property
    def components(self):
        """The file-level sets this one is made of (itself when it is not fused)."""
        return self.parts or (self.name,)


def _full_fc(data, tr, parcel_network, networks):
    return connectivity.full_fc(data)


def _network_fc(data, tr, parcel_network, networks):
    return connectivity.network_fc(data, connectivity.network_membership(parcel_network, networks))


def _covariance(data, tr, parcel_network, networks):
    return connectivity.covariance_vector(data)


def _dynamics(data, tr, parcel_network, networks):
    return dynamics.network_dynamics(data, tr, parcel_network, networks)


FEATURE_SETS = {entry.name: entry for entry in (
    FeatureSet("model", "frozen teacher embeddings of the pretrained model (CLS + mean of valid network tokens)",
               rule="embed", needs_model=True, per_seed=True),
    FeatureSet("random_init", "the same architecture and pooling, untrained: the control for `model`",
               rule="embed", baseline=True, needs_model=True, per_seed=True),
    FeatureSet("fc", "full Fisher-z functional connectivity (upper triangle)",
               rule="connectivity_features", row=_full_fc, baseline=True),
    FeatureSet("network_fc", "mean Fisher-z within and between networks (NaN for a block without edges)",
               rule="connectivity_features", row=_network_fc, baseline=True),
    FeatureSet("tangent_fc", "tangent-space FC (nilearn, kind=tangent) of per-scan Ledoit-Wolf covariances; "
               "the reference is the geometric mean of each split's training scans",
               rule="connectivity_features", row=_covariance, fold=connectivity.tangent_fold, baseline=True),
    FeatureSet("dynamics", "per network: ALFF, fALFF, lag-1 autocorrelation, log-PSD in 4 log-spaced bins "
               "(0.01-0.15 Hz), 1/f slope", rule="dynamics_features", row=_dynamics, baseline=True),
    FeatureSet("fc+dynamics", "`fc` and `dynamics` side by side, each block weighted equally",
               parts=("fc", "dynamics"), baseline=True),
    FeatureSet("model+network_fc", "`model` and `network_fc` side by side, each block weighted equally",
               parts=("model", "network_fc"), needs_model=True),
)}
DEFAULT_FEATURE_SETS = ("model", "random_init", "fc", "network_fc", "tangent_fc", "dynamics", "fc+dynamics")


def feature_set(name):
    """The registry entry of `name`; a config error naming the known sets otherwise."""
    if name not in FEATURE_SETS:
        raise SemantoksError(f"config.yaml: probe.feature_sets names {name!r}; use any of {', '.join(FEATURE_SETS)}.")
    return FEATURE_SETS[name]


def rule_feature_sets(rule):
    """Names of the file-level sets a Snakemake rule writes, in registry order."""
    return [name for name, entry in FEATURE_SETS.items() if entry.rule == rule]


def wildcard_constraint(rule):
    """The `feature_set` wildcard constraint of a feature rule (regex alternation of its sets)."""
    return "|".join(rule_feature_sets(rule))


def baseline_names():
    """The sets every probed set is paired against, in registry order."""
    return tuple(name for name, entry in FEATURE_SETS.items() if entry.baseline)


def model_feature_sets():
    """The file-level sets made from the pretraining's architecture (expanded per seed where runs have seeds)."""
    return tuple(name for name, entry in FEATURE_SETS.items() if entry.per_seed)


def fold_features(name, X_train, X_test):
    """A set's features on one split: its `fold` fitted on the training rows, else the stored rows unchanged."""
    fold = FEATURE_SETS[name].fold if name in FEATURE_SETS else None
    return fold(X_train, X_test) if fold else (X_train, X_test)


def compute_feature_table(name, scans, parcel_network, networks):
    """(meta, X) of a static set over dataset scans (`parcel_network` per parcel, `networks` in the atlas' order):
    one row per scan, from the entry's `row` function."""
    entry = feature_set(name)
    if entry.row is None:
        raise SemantoksError(f"feature set {name!r} is not computed from time series; its rule is {entry.rule}.")
    meta, rows = [], []
    for scan in scans:
        connectivity.check_parcels(scan, len(parcel_network))
        rows.append(entry.row(scan.data, scan.tr, parcel_network, networks))
        meta.append({"cohort": scan.cohort, "scan_id": scan.scan_id, "subject": scan.subject, "session": scan.session})
    frame = pd.DataFrame(meta, columns=["cohort", "scan_id", "subject", "session"])
    width = len(rows[0]) if rows else 0
    return frame, np.asarray(rows, dtype=np.float64).reshape(len(rows), width)


def docs_table():
    """The Markdown table of docs/probes.md's "Feature sets" section."""
    lines = ["| name | rule | baseline | what it is |", "| --- | --- | --- | --- |"]
    for name, entry in FEATURE_SETS.items():
        rule = f"`{entry.rule}`" if entry.rule else "fused in the probe"
        lines.append(f"| `{name}` | {rule} | {'yes' if entry.baseline else ''} | {entry.description} |")
    return "\n".join(lines)
