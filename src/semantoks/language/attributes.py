"""Descriptor-attribute probes: each descriptor's band, from the training-subject z-reference, as a label.

The texts' five bands are too sparse for a few dozen scans (|z| > 2 is ~5 % of them), so the probes
use three: lower (z < -1), typical (-1 <= z <= 1), elevated (z > 1). Per feature set, one split basis
and one logistic fit (the probes' estimators, fixed C) for every descriptor at once and for its
label-shuffled copies; balanced accuracy on the held-out scans beside the shuffle null and the
balanced accuracy of always answering the training majority.
"""

import warnings

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from semantoks.language.descriptors import FAMILIES
from semantoks.probes.estimators import SplitBasis, fit_logistic
from semantoks.probes.nulls import subject_label_shuffles

BANDS = ("lower", "typical", "elevated")
# sklearn's default penalty, fixed in advance: no inner CV, so every descriptor costs one column of one fit
ATTRIBUTE_C = 1.0


def attribute_bands(z):
    """0 lower (z < -1), 1 typical, 2 elevated (z > 1); -1 where z is not finite."""
    z = np.asarray(z, dtype=np.float64)
    bands = np.where(z < -1, 0, np.where(z > 1, 2, 1))
    return np.where(np.isfinite(z), bands, -1)


def attribute_probes(z, names, train, feature_sets, n_null=5, seed=0, subjects=None):
    """Per family and feature set: mean balanced accuracy over descriptors, its shuffled null and majority chance.

    `z` [n_scans, n_descriptors] from the training-subject reference; `train` a boolean mask of the
    training subjects' scans; `feature_sets` {name: X [n_scans, F]} on the same rows. A descriptor is
    probed when its band is defined on every scan and it has two or more bands among the training
    scans and among the held-out scans. `subjects` names each row's subject: the null permutes whole
    subjects (each takes the bands of its first training scan), default every scan its own subject.
    """
    bands = attribute_bands(z)
    test = ~train
    usable = [j for j in range(len(names)) if (bands[:, j] >= 0).all()
              and len(np.unique(bands[train, j])) >= 2 and len(np.unique(bands[test, j])) >= 2]
    if not usable or train.sum() < 2 or test.sum() < 2:
        return {"bands": list(BANDS), "per_family": {}, "n_descriptors": 0}
    labels = bands[:, usable]
    train_subjects = None if subjects is None else np.asarray(subjects)[train]
    shuffled = subject_label_shuffles(labels[train], train_subjects, n_null, seed)
    Y = np.concatenate([labels[train], *shuffled], axis=1)
    majority = np.array([_majority_score(labels[train, j], labels[test, j]) for j in range(len(usable))])
    family = np.array([names[j].split(".", 1)[0] for j in usable])
    per_family = {}
    for set_name, X in feature_sets.items():
        basis = SplitBasis(np.asarray(X[train], dtype=np.float64))
        proba = fit_logistic(basis.train_scores, Y, ATTRIBUTE_C, basis.project(np.asarray(X[test], dtype=np.float64)),
                             len(BANDS))
        predicted = proba.argmax(axis=2).reshape(-1, n_null + 1, len(usable))
        scores = np.array([[_balanced_accuracy(labels[test, j], predicted[:, copy, j])
                            for j in range(len(usable))] for copy in range(n_null + 1)])
        for name in FAMILIES:
            in_family = family == name
            if not in_family.any():
                continue
            null = scores[1:, in_family].mean(axis=1)
            per_family.setdefault(name, {})[set_name] = {
                "balanced_accuracy": float(scores[0, in_family].mean()), "null_mean": float(null.mean()),
                "null_sd": float(null.std()), "majority": float(majority[in_family].mean()),
                "n_descriptors": int(in_family.sum())}
    return {"bands": list(BANDS), "per_family": per_family, "n_descriptors": len(usable),
            "n_train_scans": int(train.sum()), "n_test_scans": int(test.sum()), "n_null": int(n_null),
            "C": ATTRIBUTE_C}


def _majority_score(train_labels, test_labels):
    """Balanced accuracy on the held-out labels of always answering the training majority band."""
    values, counts = np.unique(train_labels, return_counts=True)
    return _balanced_accuracy(test_labels, np.full(len(test_labels), values[np.argmax(counts)]))


def _balanced_accuracy(truth, predicted):
    # a band predicted but absent from the held-out scans is simply wrong, not worth a warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return balanced_accuracy_score(truth, predicted)
