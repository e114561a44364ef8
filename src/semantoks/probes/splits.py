"""Subject-grouped splits: made on subjects, then expanded to their scans, so no subject straddles a split."""

import numpy as np
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit


def subject_splits(subjects, labels=None, n_repeats=10, test_size=0.2, seed=0):
    """Repeated random train/test splits of `subjects` (unique ids), stratified on `labels` when given.

    Returns a list of (train_subjects, test_subjects) arrays, one pair per repeat.
    """
    subjects = np.asarray(subjects)
    if labels is None:
        splitter = ShuffleSplit(n_splits=n_repeats, test_size=test_size, random_state=seed)
        indices = splitter.split(subjects)
    else:
        splitter = StratifiedShuffleSplit(n_splits=n_repeats, test_size=test_size, random_state=seed)
        indices = splitter.split(subjects, np.asarray(labels))
    return [(subjects[np.sort(train)], subjects[np.sort(test)]) for train, test in indices]


def subject_folds(labels=None, n_subjects=None, n_folds=5, seed=0):
    """Inner K-fold over subjects (positions 0..n-1), stratified on `labels` when given: (train, valid) pairs."""
    if labels is None:
        return list(KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.zeros(n_subjects)))
    labels = np.asarray(labels)
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(folds.split(np.zeros(len(labels)), labels))


def scan_splits(scan_subjects, splits):
    """Subject splits expanded to (train scan positions, test scan positions), one pair per repeat."""
    return [(scan_indices(scan_subjects, train), scan_indices(scan_subjects, test)) for train, test in splits]


def scan_indices(scan_subjects, chosen_subjects):
    """Positions of the scans whose subject is in `chosen_subjects`."""
    return np.flatnonzero(np.isin(np.asarray(scan_subjects), np.asarray(chosen_subjects)))
