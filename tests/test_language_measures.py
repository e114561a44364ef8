"""Descriptor measures against hand-computed values on small matrices (and networkx where it has them)."""

import networkx as nx
import numpy as np
import pytest

from semantoks.language import measures


def test_proportional_threshold_keeps_the_strongest_share():
    w = np.array([[0, 0.9, 0.1, 0.5], [0.9, 0, 0.3, 0.2], [0.1, 0.3, 0, 0.8], [0.5, 0.2, 0.8, 0]])
    kept = measures.proportional_threshold(w, density=0.5)
    assert sorted(kept[np.triu_indices(4, 1)][kept[np.triu_indices(4, 1)] > 0]) == [0.5, 0.8, 0.9]
    np.testing.assert_array_equal(kept, kept.T)


def test_global_efficiency_of_a_path_and_against_networkx():
    path = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=float)
    assert measures.global_efficiency(path) == pytest.approx(5 / 6)
    graph = nx.gnp_random_graph(30, 0.1, seed=1)
    assert measures.global_efficiency(nx.to_numpy_array(graph)) == pytest.approx(nx.global_efficiency(graph))


def test_weighted_clustering_matches_networkx():
    rng = np.random.default_rng(0)
    w = measures.proportional_threshold(np.abs(np.corrcoef(rng.standard_normal((20, 15)).T)), density=0.4)
    expected = nx.average_clustering(nx.from_numpy_array(w), weight="weight")
    assert measures.weighted_clustering(w) == pytest.approx(expected)


def test_louvain_modularity_of_two_triangles_is_one_half_and_seeded():
    triangles = np.kron(np.eye(2), np.ones((3, 3)) - np.eye(3))
    assert measures.louvain_modularity(triangles, seed=0) == pytest.approx(0.5)
    rng = np.random.default_rng(1)
    w = measures.proportional_threshold(np.abs(np.corrcoef(rng.standard_normal((40, 30)).T)), density=0.2)
    assert measures.louvain_modularity(w, seed=3) == measures.louvain_modularity(w, seed=3)


def test_diffusion_map_separates_two_blocks_and_solves_the_markov_eigenproblem():
    rng = np.random.default_rng(2)
    affinity = np.kron(np.eye(2), np.full((5, 5), 0.9)) + 0.05 + 0.01 * rng.random((10, 10))
    affinity = (affinity + affinity.T) / 2
    gradients, lam = measures.diffusion_map(affinity, n_components=2)
    first = gradients[:, 0]
    assert np.all(np.sign(first[:5]) == np.sign(first[0])) and np.all(np.sign(first[5:]) == -np.sign(first[0]))
    d = affinity.sum(1) ** -0.5
    kernel = affinity * d[:, None] * d[None, :]
    markov = kernel / kernel.sum(1, keepdims=True)
    unscaled = first / (lam[0] / (1 - lam[0]))
    np.testing.assert_allclose(markov @ unscaled, lam[0] * unscaled, atol=1e-10)


def test_diffusion_map_matches_brainspace_when_installed():
    gradient = pytest.importorskip("brainspace.gradient")
    rng = np.random.default_rng(3)
    series = rng.standard_normal((200, 30)) + rng.standard_normal((200, 2)) @ rng.standard_normal((2, 30)) * 1.5
    affinity = measures.gradient_affinity(np.corrcoef(series.T))
    ours, _ = measures.diffusion_map(affinity)
    maps = gradient.GradientMaps(n_components=3, approach="dm", kernel=None, random_state=0)
    theirs = maps.fit(affinity, sparsity=0).gradients_
    for k in range(3):
        assert abs(np.corrcoef(ours[:, k], theirs[:, k])[0, 1]) > 0.999


def test_gradient_affinity_keeps_top_tenth_of_each_row_and_zeroes_negatives():
    fc = -np.ones((11, 11))
    fc[0, 1] = fc[1, 0] = 0.5
    affinity = measures.gradient_affinity(fc)
    assert affinity[0, 0] == pytest.approx(1.0) and affinity[0, 2] == 0.0 and (affinity >= 0).all()


def test_procrustes_recovers_a_rotation():
    rng = np.random.default_rng(4)
    reference = rng.standard_normal((12, 3))
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    rotated = reference @ rotation.T
    rotated[0] = np.nan
    aligned = measures.procrustes_align(rotated, reference)
    np.testing.assert_allclose(aligned[1:], reference[1:], atol=1e-10)
    assert np.isnan(aligned[0]).all()


def test_dynamics_of_a_slow_sinusoid():
    tr, f = 2.0, 0.05
    series = np.sin(2 * np.pi * f * tr * np.arange(200))
    found = measures.dynamics(series, tr)
    # ten samples per period: mean |sin| over 0, 36, 72, ... degrees
    assert found["amplitude"] == pytest.approx(0.4 * (np.sin(np.pi / 5) + np.sin(2 * np.pi / 5)))
    assert found["autocorr"] == pytest.approx(np.cos(2 * np.pi * f * tr), abs=0.01)
    assert found["outliers"] == 0.0 and found["falff"] > 0.8 and found["spectral_ratio"] > 2


def test_short_scans_and_long_trs_are_named():
    assert "shorter than the 100 s" in measures.spectral_problem(30, 2.0)
    assert "no frequencies above" in measures.spectral_problem(200, 6.0)
    assert measures.spectral_problem(100, 2.0) is None


def test_modular_fc_widens_the_affinity_until_the_gradients_are_defined():
    # three networks of 12 parcels, near-zero coupling between them: each row's top decile stays in its network
    rng = np.random.default_rng(4)
    series = np.repeat(rng.standard_normal((300, 3)), 12, axis=1) + 0.8 * rng.standard_normal((300, 36))
    fc = np.corrcoef(series.T)
    narrow, _ = measures.diffusion_map(measures.gradient_affinity(fc))
    assert not np.isfinite(narrow).all()  # the top-decile graph falls apart into the three networks
    affinity, sparsity = measures.connected_gradient_affinity(fc)
    gradients, lam = measures.diffusion_map(affinity)
    assert sparsity < measures.GRADIENT_SPARSITY and np.isfinite(gradients).all() and (lam < 1).all()
    first = gradients[:, 0]
    assert np.ptp(first[:12]) < np.ptp(first)  # gradient 1 still orders parcels by network


def test_connected_fc_keeps_the_top_decile_affinity():
    rng = np.random.default_rng(3)
    series = rng.standard_normal((200, 30)) + rng.standard_normal((200, 2)) @ rng.standard_normal((2, 30)) * 1.5
    fc = np.corrcoef(series.T)
    affinity, sparsity = measures.connected_gradient_affinity(fc)
    assert sparsity == measures.GRADIENT_SPARSITY
    np.testing.assert_array_equal(affinity, measures.gradient_affinity(fc))
