"""Subject-grouped splits: made on subjects, then expanded to their scans, so no subject straddles a split."""

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    LeaveOneGroupOut,
    ShuffleSplit,
    StratifiedKFold,
    StratifiedShuffleSplit,
)

from semantoks.errors import SemantoksError

# probe.split: random subject splits, or splits that keep every site (probe.site_column) on one side
SPLIT_KINDS = ("random", "site_grouped", "leave_site_out")


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


def site_splits(subjects, sites, kind, n_repeats=10, test_size=0.2, seed=0):
    """Train/test splits of `subjects` that never put one site on both sides.

    `site_grouped`: `n_repeats` random splits holding out about `test_size` of the sites' subjects;
    `leave_site_out`: one split per site, that site as the test set. Same form as `subject_splits`.
    """
    subjects, sites = np.asarray(subjects), np.asarray(sites)
    n_sites = len(np.unique(sites))
    if n_sites < 2:
        raise SemantoksError(f"config.yaml: probe.split {kind} needs subjects from at least 2 sites (found {n_sites}); "
                             "probe more sites or set probe.split: random.")
    if kind == "leave_site_out":
        indices = LeaveOneGroupOut().split(subjects, groups=sites)
    elif kind == "site_grouped":
        splitter = GroupShuffleSplit(n_splits=n_repeats, test_size=test_size, random_state=seed)
        indices = splitter.split(subjects, groups=sites)
    else:
        raise SemantoksError(f"config.yaml: probe.split {kind!r} is not a site split; use one of {', '.join(SPLIT_KINDS)}.")
    return [(subjects[np.sort(train)], subjects[np.sort(test)]) for train, test in indices]


def subject_folds(labels=None, n_subjects=None, n_folds=5, seed=0, groups=None):
    """Inner K-fold over subjects (positions 0..n-1), stratified on `labels` when given: (train, valid) pairs.

    With `groups` (a site per subject), folds keep each group on one side and are not stratified.
    """
    if groups is not None:
        groups = np.asarray(groups)
        n_folds = min(n_folds, len(np.unique(groups)))
        return list(GroupKFold(n_splits=max(n_folds, 2)).split(np.zeros(len(groups)), groups=groups))
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
