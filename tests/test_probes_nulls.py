"""The subject-level permutation null: whole subjects move, strata are kept, draws are reproducible."""

import numpy as np

from semantoks.probes.nulls import subject_label_shuffles


def test_every_scan_of_a_subject_gets_the_same_shuffled_label():
    subjects = np.repeat(np.arange(20), 3)
    labels = np.repeat(np.arange(20) % 4, 3)
    shuffles = subject_label_shuffles(labels, subjects, n_permutations=50, seed=1)
    assert shuffles.shape == (50, 60)
    for shuffled in shuffles:
        assert (shuffled.reshape(20, 3) == shuffled.reshape(20, 3)[:, :1]).all()
        assert sorted(shuffled[::3]) == sorted(labels[::3])
    assert (shuffles != labels).any(axis=1).mean() > 0.9


def test_strata_keep_their_labels_and_rows_with_columns_move_together():
    subjects = np.arange(12)
    strata = np.repeat([0, 1], 6)
    labels = np.column_stack([subjects, subjects * 10])
    for shuffled in subject_label_shuffles(labels, subjects, n_permutations=20, seed=0, strata=strata):
        assert set(shuffled[:6, 0]) == set(range(6)) and set(shuffled[6:, 0]) == set(range(6, 12))
        np.testing.assert_array_equal(shuffled[:, 1], shuffled[:, 0] * 10)
    np.testing.assert_array_equal(subject_label_shuffles(labels, seed=3, n_permutations=4),
                                  subject_label_shuffles(labels, seed=3, n_permutations=4))
