"""The one permutation null of the project: whole subjects' labels permuted, never single scans.

Scans of one subject share their subject's traits; permuting scans would hand a subject's scans
different labels and make the null easier to beat than the real question. A subject's label is the
label of its first row; with `strata` (e.g. cohorts) subjects are permuted only within their stratum.
"""

import numpy as np


def subject_label_shuffles(labels, subjects=None, n_permutations=100, seed=0, strata=None):
    """[n_permutations, *labels.shape] copies of `labels` (first axis = rows) with subjects' labels permuted.

    `subjects` names each row's subject (default: every row its own subject). Every row of a subject gets
    the same shuffled label in each copy. Draws come from `np.random.default_rng(seed)` (or a Generator).
    """
    labels = np.asarray(labels)
    subjects = np.arange(len(labels)) if subjects is None else np.asarray(subjects)
    strata = np.zeros(len(labels), dtype=int) if strata is None else np.asarray(strata)
    _, first, inverse = np.unique(subjects, return_index=True, return_inverse=True)
    unit_labels, unit_strata = labels[first], strata[first]
    groups = [np.flatnonzero(unit_strata == stratum) for stratum in np.unique(unit_strata)]
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    shuffles = np.empty((n_permutations, *labels.shape), dtype=labels.dtype)
    for i in range(n_permutations):
        shuffled = unit_labels.copy()
        for rows in groups:
            shuffled[rows] = unit_labels[rng.permutation(rows)]
        shuffles[i] = shuffled[inverse]
    return shuffles
