"""The language stages' one subject-grouped split: the reference, heads and codebook see only its training subjects."""

import numpy as np

from semantoks.dataset.keys import subject_key
from semantoks.probes.splits import subject_splits


def language_split(cohorts, subjects, test_size=0.2, seed=0):
    """(train, test) sorted lists of `cohort/subject` keys, drawn with the probes' subject split code."""
    keys = sorted({subject_key(c, s) for c, s in zip(cohorts, subjects)})
    if len(keys) < 2:
        return keys, []
    train, test = subject_splits(np.asarray(keys), None, n_repeats=1, test_size=test_size, seed=seed)[0]
    return sorted(train.tolist()), sorted(test.tolist())
