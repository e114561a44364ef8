"""(fMRI feature, text embedding) pairs at scan level and network level, matched by (cohort, scan_id)."""

import numpy as np
import pandas as pd

from semantoks.dataset.keys import subject_key
from semantoks.errors import SemantoksError


def _unit(x):
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0).astype(np.float32)


def scan_text_targets(text_keys, text_embeddings):
    """{(cohort, scan_id): [2, d]} (canonical, augmentation): the unit mean of the scan's family texts."""
    scan_rows = text_keys["level"] == "scan"
    found = {}
    for variant, chosen in enumerate((text_keys["variant"] == 0, text_keys["augment"])):
        rows = text_keys[scan_rows & chosen]
        for key, index in rows.groupby(["cohort", "scan_id"]).indices.items():
            found.setdefault(key, [None, None])[variant] = text_embeddings[rows.index[index]].mean(axis=0)
    return {key: _unit(np.stack(pair)) for key, pair in found.items() if pair[1] is not None}


def network_text_targets(text_keys, text_embeddings):
    """{(cohort, scan_id, network): [2, d]} (canonical, augmentation) network sentences."""
    rows = text_keys[text_keys["level"] == "network"]
    found = {}
    for i, (cohort, scan_id, unit, variant, augment) in enumerate(
            rows[["cohort", "scan_id", "unit", "variant", "augment"]].itertuples(index=False)):
        slot = 0 if variant == 0 else 1 if augment else None
        if slot is not None:
            found.setdefault((cohort, scan_id, unit), [None, None])[slot] = text_embeddings[rows.index[i]]
    return {key: np.stack(pair) for key, pair in found.items() if pair[1] is not None}


def scan_pairs(meta, features, targets, extra=None):
    """(features, targets [2, n, d], meta) of the scans that have both; `extra` adds text vectors per subject key."""
    keep, stacked = [], []
    for i, key in enumerate(zip(meta["cohort"], meta["scan_id"])):
        if key in targets:
            target = targets[key]
            added = (extra or {}).get(subject_key(meta["cohort"].iloc[i], meta["subject"].iloc[i]))
            if added is not None:
                # the unit mean of the four family texts and the phenotype sentences, all weighted alike
                target = _unit(target * 4 + np.asarray(added).sum(axis=0)[None, :])
            keep.append(i)
            stacked.append(target)
    if not keep:
        raise SemantoksError("language: no scan has both features and descriptor texts; rerun descriptors on the "
                             "same cohorts as the features.")
    return features[keep], np.stack(stacked, axis=1), meta.iloc[keep].reset_index(drop=True)


def network_pairs(meta, tokens, networks, targets):
    """(token features [m, D], targets [2, m, d], pair meta with a `network` column) for every sentence."""
    rows, feats, stacked = [], [], []
    for i, (cohort, scan_id) in enumerate(zip(meta["cohort"], meta["scan_id"])):
        for n, network in enumerate(networks):
            target = targets.get((cohort, scan_id, network))
            if target is not None:
                rows.append({**meta.iloc[i].to_dict(), "network": network})
                feats.append(tokens[i, n])
                stacked.append(target)
    if not rows:
        raise SemantoksError("language: no network token has a descriptor sentence; rerun descriptors and align "
                             "on the same cohorts.")
    return np.asarray(feats, dtype=np.float32), np.stack(stacked, axis=1), pd.DataFrame(rows)


def is_train(meta, train_subjects):
    """Boolean mask of the rows whose cohort/subject is a training subject."""
    train = set(train_subjects)
    return np.array([subject_key(c, s) in train for c, s in zip(meta["cohort"], meta["subject"])], dtype=bool)
