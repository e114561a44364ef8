"""Functional connectivity of one scan: Fisher-z correlation, network means, per-scan covariance, tangent space.

Conventions (one rule each):
- Pearson correlation over the kept frames, Fisher-z (`arctanh`, r clipped to +-R_CLIP so identical
  signals stay finite). A parcel outside the scan's mask (NaN column) or with a constant signal has no
  defined correlation: every edge touching it is 0, so all scans of an atlas keep the same columns.
- Network means average only defined edges (distinct usable parcels); a block without any defined
  edge has no mean and is NaN (the probes then drop that scan and record it in `dropped_scans`).
- Tangent-space FC: per-scan Ledoit-Wolf covariances of the z-scored usable parcels (an unusable
  parcel keeps unit variance and no covariance, so every matrix stays positive definite), projected
  by nilearn's ConnectivityMeasure(kind="tangent") whose reference is fitted on training scans only.
"""

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.covariance import ledoit_wolf

from semantoks.errors import SemantoksError

R_CLIP = 0.999999


def network_membership(parcel_network, networks):
    """[n_networks, n_parcels] 0/1 matrix: row n marks the parcels of networks[n]."""
    return np.array([[net == name for net in parcel_network] for name in networks], dtype=np.float64)


def usable_parcels(data):
    """Parcels with a finite, non-constant signal over the scan's frames."""
    data = np.asarray(data, dtype=np.float64)
    centred = data - data.mean(axis=0)
    scale = np.sqrt((centred**2).sum(axis=0))
    return np.isfinite(scale) & (scale > 0)


def fisher_z_connectivity(data):
    """Fisher-z correlation matrix of a [n_frames, n_parcels] series and the mask of usable parcels."""
    data = np.asarray(data, dtype=np.float64)
    usable = usable_parcels(data)
    centred = data - data.mean(axis=0)
    scale = np.sqrt((centred**2).sum(axis=0))
    unit = np.where(usable, centred / np.where(usable, scale, 1.0), 0.0)
    z = np.arctanh(np.clip(unit.T @ unit, -R_CLIP, R_CLIP))
    z[~usable, :] = 0.0
    z[:, ~usable] = 0.0
    return z, usable


def network_means(z, usable, member):
    """Mean Fisher-z within (diagonal) and between networks over defined edges; NaN where a block has none."""
    valid = member * usable[None, :]
    # pairs of distinct usable parcels: the diagonal of z is a parcel with itself, not an edge
    edge = np.outer(usable, usable).astype(np.float64)
    np.fill_diagonal(edge, 0.0)
    sums = valid @ np.where(edge > 0, z, 0.0) @ valid.T
    counts = valid @ edge @ valid.T
    return np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0)


def check_parcels(scan, n_parcels):
    """Raise when a scan's parcel count differs from the atlas table's."""
    if scan.data.shape[1] != n_parcels:
        raise SemantoksError(
            f"scan {scan.scan_id} of cohort {scan.cohort}: has {scan.data.shape[1]} parcels but the atlas table lists "
            f"{n_parcels}; use the labels.tsv of the atlas the dataset was built with."
        )


def full_fc(data):
    """Strict upper triangle of the scan's Fisher-z matrix, row-major."""
    z, _ = fisher_z_connectivity(data)
    return z[np.triu_indices(z.shape[0], k=1)]


def network_fc(data, member):
    """Upper triangle (diagonal included) of the networks x networks mean Fisher-z."""
    z, usable = fisher_z_connectivity(data)
    return network_means(z, usable, member)[np.triu_indices(member.shape[0])]


def network_fc_names(networks):
    """Column names `A--B` of `network_fc`, in feature order."""
    return [f"{networks[i]}--{networks[j]}" for i, j in zip(*np.triu_indices(len(networks)))]


def scan_covariance(data):
    """Ledoit-Wolf covariance of the z-scored usable parcels; unusable parcels get unit variance and no covariance."""
    data = np.asarray(data, dtype=np.float64)
    usable = usable_parcels(data)
    covariance = np.eye(data.shape[1])
    if usable.sum() >= 2:
        kept = data[:, usable]
        kept = (kept - kept.mean(axis=0)) / kept.std(axis=0)
        covariance[np.ix_(usable, usable)] = ledoit_wolf(kept, assume_centered=True)[0]
    return covariance


def covariance_vector(data):
    """Upper triangle (diagonal included) of `scan_covariance`, the stored form the tangent fold reads back."""
    covariance = scan_covariance(data)
    return covariance[np.triu_indices(covariance.shape[0])]


def covariance_matrices(vectors):
    """[n_scans, P, P] symmetric matrices from upper-triangle rows (diagonal included)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    n_parcels = int(round((np.sqrt(8 * vectors.shape[1] + 1) - 1) / 2))
    if n_parcels * (n_parcels + 1) // 2 != vectors.shape[1]:
        raise SemantoksError(f"tangent_fc: rows of width {vectors.shape[1]} are not the upper triangle of a square "
                             "matrix; rebuild features/tangent_fc.parquet.")
    upper = np.triu_indices(n_parcels)
    matrices = np.zeros((len(vectors), n_parcels, n_parcels))
    matrices[:, upper[0], upper[1]] = vectors
    matrices[:, upper[1], upper[0]] = vectors
    return matrices


class _GivenCovariance(BaseEstimator):
    """A covariance 'estimator' that returns the matrix it is given, so the tangent fold can start from stored ones."""

    def fit(self, X, y=None):
        self.covariance_ = np.asarray(X, dtype=np.float64)
        return self


def tangent_fold(train_vectors, test_vectors):
    """Tangent-space FC of train and test scans, the reference (geometric mean) fitted on the training scans only.

    Inputs are `covariance_vector` rows; outputs the upper triangles (diagonal included) of the tangent matrices.
    """
    from nilearn.connectome import ConnectivityMeasure  # heavy import, only inside a probe fold

    measure = ConnectivityMeasure(cov_estimator=_GivenCovariance(), kind="tangent", vectorize=True,
                                  standardize=False)
    train = measure.fit_transform(list(covariance_matrices(train_vectors)))
    test = covariance_matrices(test_vectors)
    # nilearn refuses to transform a single matrix (a "group" of one); a doubled one maps to the same vector
    test = measure.transform(list(test) * (2 if len(test) == 1 else 1))[: len(test)] if len(test) else train[:0]
    return train, test
