"""The linear probes, fitted once per outer split: StandardScaler -> Ridge / LogisticRegression.

Both work in the split's singular basis: the training features are standardised and centred, and
a thin SVD X = U S V' is taken (via the eigendecomposition of the smaller Gram matrix). An
L2-penalised linear model's weights lie in the row space of X (w = V b with |w| = |b|), so fitting
on the scores Z = U S instead of X is exact, and smaller when features outnumber scans.

Ridge picks alpha by exact leave-one-subject-out CV: with the hat matrix H of the training set,
the held-out residuals of subject g are (I - H_gg)^-1 (y_g - yhat_g), available for every alpha
and every label column from the one SVD. Leave-one-scan-out (RidgeCV's GCV/LOO) would let a
subject's other scans inform its own held-out prediction and favour too little shrinkage.

Logistic regression picks C by K-fold CV over subjects (log loss on held-out scans), fitting all
folds together along the C path from strong to weak penalty with warm starts (see `logistic.py`),
then refits on the whole training set. Label-shuffle copies reuse the split's standardisation,
SVD and chosen C (ridge re-selects alpha per copy, which costs nothing): repeating the C search
for each permutation would multiply the null's cost by folds x grid."""

import numpy as np

from semantoks.probes.logistic import balanced_weights, fit_logistic_columns, predict_proba

RIDGE_ALPHAS = tuple(np.logspace(-1, 6, 15))
LOGISTIC_CS = tuple(np.logspace(-4, 1, 6))


class SplitBasis:
    """Standardisation and thin SVD of one split's training features; projects any rows onto the basis.

    `blocks` (column widths of a fused set, in order) further divides each block's standardised
    columns by sqrt(its width), so every block carries the same total variance.
    """

    def __init__(self, X_train, blocks=None):
        self.mean = X_train.mean(axis=0)
        scale = X_train.std(axis=0)
        self.scale = np.where(scale > 0, scale, 1.0)
        if blocks is not None:
            self.scale = self.scale * np.repeat(np.sqrt(np.asarray(blocks, dtype=np.float64)), blocks)
        centred = (X_train - self.mean) / self.scale
        # eigh of the smaller Gram matrix is several times faster than an SVD of the wide matrix
        self.wide = centred.shape[0] <= centred.shape[1]
        eigenvalues, vectors = np.linalg.eigh(centred @ centred.T if self.wide else centred.T @ centred)
        keep = eigenvalues > max(eigenvalues.max(initial=0.0), 1e-300) * 1e-10
        self.s = np.sqrt(eigenvalues[keep])[::-1]
        vectors = vectors[:, keep][:, ::-1]
        if self.wide:
            self.U, self._centred = vectors, centred
        else:
            self.U, self._V = centred @ vectors / self.s, vectors

    @property
    def train_scores(self):
        return self.U * self.s

    def project(self, X):
        """Scores of new rows in the basis: standardised X times V."""
        standardised = (X - self.mean) / self.scale
        if self.wide:
            # V = X'U/s, applied without forming the [n_features, rank] matrix
            return (standardised @ self._centred.T) @ self.U / self.s
        return standardised @ self._V


def fit_ridge(basis, Y, groups, X_test, alphas=RIDGE_ALPHAS):
    """Ridge for every column of Y [n_train, m] with its own leave-one-subject-out alpha.

    Returns (test predictions [n_test, m], chosen alpha per column).
    """
    errors, UtY, Y_mean = ridge_subject_cv_errors(basis, Y, groups, alphas)
    # ties go to the stronger penalty: argmin over the reversed (descending-alpha) grid
    best = len(alphas) - 1 - np.argmin(errors[::-1], axis=0)
    chosen = np.asarray(alphas)[best]
    coef = (basis.s[:, None] / (basis.s[:, None] ** 2 + chosen[None, :])) * UtY
    return basis.project(X_test) @ coef + Y_mean, chosen


def ridge_subject_cv_errors(basis, Y, groups, alphas):
    """Leave-one-subject-out mean squared error [n_alphas, m], plus U'(Y - mean) and the column means."""
    n = len(Y)
    Y_mean = Y.mean(axis=0)
    UtY = basis.U.T @ (Y - Y_mean)
    blocks = _group_blocks(groups)
    errors = np.empty((len(alphas), Y.shape[1]))
    for a, alpha in enumerate(alphas):
        shrink = basis.s**2 / (basis.s**2 + alpha)
        residual = (Y - Y_mean) - basis.U @ (shrink[:, None] * UtY)
        held_out = np.empty_like(residual)
        for rows in blocks:
            # hat-matrix block of the subject's scans; 1/n is the unpenalised intercept's share
            U_g = basis.U[rows]
            H_gg = np.einsum("gir,r,gjr->gij", U_g, shrink, U_g) + 1.0 / n
            held_out[rows] = np.linalg.solve(np.eye(rows.shape[1]) - H_gg, residual[rows])
        errors[a] = (held_out**2).mean(axis=0)
    return errors, UtY, Y_mean


def _group_blocks(groups):
    """Scan rows grouped by subject, batched by group size: a list of int arrays [n_groups, size]."""
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    by_size = {}
    for start, count in zip(starts, counts):
        by_size.setdefault(count, []).append(order[start : start + count])
    return [np.array(rows) for rows in by_size.values()]


def select_logistic_C(Z, y, folds, Cs=LOGISTIC_CS):
    """The C with the lowest mean held-out log loss over (train, valid) scan-index folds; y holds codes 0..K-1."""
    n_classes = int(y.max()) + 1
    fit_rows = np.zeros((len(y), len(folds)), dtype=bool)
    for j, (train, _) in enumerate(folds):
        fit_rows[train, j] = True
    labels = np.repeat(y[:, None], len(folds), axis=1)
    weights = balanced_weights(labels, fit_rows)
    held_out = ~fit_rows
    losses, solution = [], None
    for C in sorted(Cs):
        # every fold at once, each C warm-started from the previous (stronger) penalty's solution
        solution = fit_logistic_columns(Z, labels, weights, C, n_classes, start=solution)
        proba = predict_proba(Z, *solution)
        picked = np.take_along_axis(proba, labels[:, :, None], axis=2)[:, :, 0]
        fold_loss = -(np.log(np.clip(picked, 1e-15, 1.0)) * held_out).sum(axis=0) / held_out.sum(axis=0)
        losses.append(fold_loss.mean())
    # ties go to the stronger penalty (smaller C)
    return sorted(Cs)[int(np.argmin(losses))]


def fit_logistic(Z, Y, C, Z_test, n_classes):
    """Logistic regression with fixed C for every column of integer labels Y [n_train, m].

    Returns test probabilities [n_test, m, n_classes].
    """
    weights = balanced_weights(Y, np.ones(Y.shape, dtype=bool))
    return predict_proba(Z_test, *fit_logistic_columns(Z, Y, weights, C, n_classes))
