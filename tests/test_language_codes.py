"""Network-token codebook: cosine k-means, usage statistics, one-hot histograms, code names."""

import numpy as np
import pytest

from semantoks.errors import SemantoksError
from semantoks.language.codes import assign_codes, code_histograms, name_codes, spherical_kmeans, usage


def clustered(seed=0):
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 6) * 5
    labels = np.repeat(np.arange(3), 20)
    return centres[labels] + 0.3 * rng.standard_normal((60, 6)), labels


def test_spherical_kmeans_recovers_directions_and_is_seeded():
    X, labels = clustered()
    centroids = spherical_kmeans(X, 3, seed=1)
    codes = assign_codes(X, centroids)
    # every planted cluster maps to one code and every code to one cluster
    assert len({(a, b) for a, b in zip(labels, codes)}) == 3
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1)
    np.testing.assert_array_equal(spherical_kmeans(X, 3, seed=1), centroids)
    assert assign_codes(np.zeros((1, 6)), centroids)[0] == -1


def test_usage_by_hand():
    codes = np.array([0, 0, 1, 1, -1])
    stats = usage(codes, 3, np.array(["A", "A", "B", "B", "B"]))
    assert stats["perplexity"] == pytest.approx(2.0) and stats["dead_codes"] == 1
    assert stats["network_entropy_bits"] == {"A": 0.0, "B": 0.0}
    mixed = usage(np.array([0, 1]), 2, np.array(["A", "A"]))
    assert mixed["network_entropy_bits"]["A"] == pytest.approx(1.0)


def test_histograms_are_one_hot_per_valid_network():
    features = code_histograms(np.array([[1, -1], [0, 2]]), 3)
    np.testing.assert_array_equal(features, [[0, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 1]])


def test_codes_are_named_by_their_nearest_members():
    X, labels = clustered()
    centroids = spherical_kmeans(X, 3, seed=1)
    codes = assign_codes(X, centroids)
    sentences = np.array([f"cluster {c}" for c in labels], dtype=object)
    names = name_codes(centroids, X, codes, np.array(["Vis"] * 60), sentences)
    assert all(len(set(row.split(" | "))) == 1 for row in names["nearest_sentences"])
    assert names["n_tokens"].sum() == 60


def test_more_codes_than_tokens_is_one_line():
    with pytest.raises(SemantoksError, match="language.codes.k: 8 codes but only 3"):
        spherical_kmeans(np.eye(3), 8)
