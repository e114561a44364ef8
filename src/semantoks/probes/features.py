"""Feature sets in the probe: `(meta, X)` pairs aligned on the scans every set has.

Every feature set is `(meta, X)`: `meta` a DataFrame with `cohort, scan_id, subject` (and `session`
where known; one row per scan) and `X` a float64 array with one row per scan in the same order. On
disk a feature set is a feature table (semantoks.features.table); what each set holds is in the
registry (semantoks.features.registry).
"""

import numpy as np

from semantoks.errors import SemantoksError


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
