"""Connectivity features against hand-computed values: Fisher-z FC, network means, tangent FC on training scans."""

from types import SimpleNamespace

import numpy as np
import pytest
from nilearn.connectome import ConnectivityMeasure
from sklearn.covariance import LedoitWolf

from semantoks.errors import SemantoksError
from semantoks.features import connectivity
from semantoks.features.registry import compute_feature_table


def scan(data, scan_id="s1", subject="01", tr=2.0):
    return SimpleNamespace(cohort="c", scan_id=scan_id, subject=subject, session=None, tr=tr,
                           data=np.asarray(data, np.float32))


def test_fc_is_fisher_z_of_pearson_with_nan_parcels_at_zero():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(80, 5))
    data[:, 1] += data[:, 0]
    data[:, 3] = np.nan
    meta, X = compute_feature_table("fc", [scan(data)], ["A"] * 5, ["A"])
    z = np.zeros((5, 5))
    z[np.ix_([0, 1, 2, 4], [0, 1, 2, 4])] = np.arctanh(np.corrcoef(data[:, [0, 1, 2, 4]].T) - np.eye(4))
    np.testing.assert_allclose(X[0], z[np.triu_indices(5, k=1)], rtol=1e-5)
    assert X.shape == (1, 10) and list(meta["scan_id"]) == ["s1"]
    assert np.isfinite(connectivity.fisher_z_connectivity(np.ones((10, 3)))[0]).all()


def test_network_fc_averages_defined_edges_within_and_between_networks():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(60, 6))
    data[:, 5] = np.nan
    networks = ["Vis", "Vis", "Vis", "DMN", "DMN", "DMN"]
    _, X = compute_feature_table("network_fc", [scan(data)], networks, ["Vis", "DMN"])
    z = np.arctanh(np.corrcoef(data[:, :5].T) - np.eye(5))
    np.testing.assert_allclose(X[0], [np.mean([z[0, 1], z[0, 2], z[1, 2]]), z[:3, 3:5].mean(), z[3, 4]], rtol=1e-5)
    with pytest.raises(SemantoksError, match="parcels"):
        compute_feature_table("network_fc", [scan(data)], networks[:4], ["Vis", "DMN"])


def test_network_means_are_nan_for_a_block_without_a_defined_edge():
    z = np.array([[0, 1.0, 0.2, 0.4], [1.0, 0, 0.6, 0.8], [0.2, 0.6, 0, 0.5], [0.4, 0.8, 0.5, 0]])
    member = connectivity.network_membership(["A", "A", "B", "B"], ["A", "B"])
    np.testing.assert_allclose(connectivity.network_means(z, np.ones(4, dtype=bool), member), [[1.0, 0.5], [0.5, 0.5]])
    means = connectivity.network_means(z, np.array([True, True, True, False]), member)
    assert np.isnan(means[1, 1]) and means[0, 1] == pytest.approx(0.4)


def _cohort(n_scans=12, n_parcels=5, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(n_parcels, n_parcels))
    return [rng.normal(size=(90, n_parcels)) @ (mixing + rng.normal(0, 0.5, mixing.shape)) for _ in range(n_scans)]


def test_tangent_fold_equals_nilearn_on_the_time_series_with_the_reference_from_training_scans():
    series = _cohort()
    rows = np.array([connectivity.covariance_vector(data) for data in series])
    train, test = connectivity.tangent_fold(rows[:9], rows[9:])
    standardised = [(data - data.mean(axis=0)) / data.std(axis=0) for data in series]
    measure = ConnectivityMeasure(cov_estimator=LedoitWolf(assume_centered=True), kind="tangent", vectorize=True,
                                  standardize=False)
    np.testing.assert_allclose(train, measure.fit_transform(standardised[:9]), atol=1e-8)
    np.testing.assert_allclose(test, measure.transform(standardised[9:]), atol=1e-8)
    single = connectivity.tangent_fold(rows[:9], rows[9:10])[1]
    np.testing.assert_allclose(single, test[:1], atol=1e-10)


def test_tangent_features_of_training_scans_ignore_held_out_scans():
    rows = np.array([connectivity.covariance_vector(data) for data in _cohort()])
    changed = np.array([connectivity.covariance_vector(data) for data in _cohort(seed=5)])
    first, _ = connectivity.tangent_fold(rows[:8], rows[8:])
    again, _ = connectivity.tangent_fold(rows[:8], changed[8:])
    np.testing.assert_array_equal(first, again)
    moved, _ = connectivity.tangent_fold(changed[:8], rows[8:])
    assert not np.allclose(first, moved)


def test_covariance_of_a_masked_parcel_is_unit_and_uncoupled_and_bad_widths_are_named():
    data = _cohort(1)[0]
    data[:, 2] = np.nan
    covariance = connectivity.covariance_matrices(connectivity.covariance_vector(data)[None])[0]
    assert covariance[2, 2] == 1.0 and not covariance[2, [0, 1, 3, 4]].any()
    assert np.linalg.eigvalsh(covariance).min() > 0
    with pytest.raises(SemantoksError, match="tangent_fc"):
        connectivity.covariance_matrices(np.zeros((2, 7)))
