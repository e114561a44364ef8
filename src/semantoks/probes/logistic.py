"""L2-penalised logistic regression for many label columns at once (inner-CV folds, label shuffles).

Column j minimises scikit-learn's `LogisticRegression(C=C_j, class_weight="balanced")` objective
on the rows it weights: sum_i w_ij loss_ij + |beta_j|^2 / (2 C_j), intercept unpenalised, a sigmoid
for two classes and a symmetric softmax for more. Solving the columns together turns sklearn's
per-fit matrix-vector products into matrix-matrix products and removes its per-fit overhead; a
test checks the solutions against sklearn's. L-BFGS runs in diagonally preconditioned coordinates
(each weight scaled by its curvature estimate), which are well conditioned in the split's singular basis.
"""

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_softmax, softmax

MAX_ITER = 500
GRADIENT_TOL = 1e-5
# a logistic loss has curvature p(1 - p) <= 1/4: the preconditioner's guess at the Hessian diagonal
CURVATURE = 0.25


def balanced_weights(labels, rows):
    """Per-column weights: sklearn's class_weight="balanced" over the rows marked in `rows` [n, m], 0 elsewhere."""
    weights = np.zeros(labels.shape)
    for j in range(labels.shape[1]):
        present = labels[rows[:, j], j]
        classes, counts = np.unique(present, return_counts=True)
        per_class = np.zeros(labels.max() + 1)
        per_class[classes] = len(present) / (len(classes) * counts)
        weights[:, j] = np.where(rows[:, j], per_class[labels[:, j]], 0.0)
    return weights


def fit_logistic_columns(Z, labels, weights, C, n_classes, start=None):
    """Fit every column of `labels` [n, m] (codes 0..n_classes-1) with its `weights` [n, m] and C (scalar or [m]).

    Returns (coef [r, m, L], intercept [m, L]) with L = 1 logit for two classes, else n_classes.
    """
    n, r = Z.shape
    m = labels.shape[1]
    L = 1 if n_classes == 2 else n_classes
    C = np.broadcast_to(np.asarray(C, dtype=np.float64), (m,))
    total = weights.sum(axis=0)
    onehot = labels[:, :, None] == np.arange(n_classes)
    penalty = 1.0 / (C * total)
    # curvature of column j's scaled objective along each coordinate (weights, then the intercept)
    scale_coef = 1.0 / np.sqrt(CURVATURE * ((Z**2).T @ weights) / total + penalty)
    scale_intercept = np.full(m, 1.0 / np.sqrt(CURVATURE))

    def unpack(theta):
        coef = theta[: r * m * L].reshape(r, m, L) * scale_coef[:, :, None]
        intercept = theta[r * m * L :].reshape(m, L) * scale_intercept[:, None]
        return coef, intercept

    def objective(theta):
        coef, intercept = unpack(theta)
        logits = (Z @ coef.reshape(r, m * L)).reshape(n, m, L) + intercept
        loss, dlogits = _loss_and_gradient(logits, labels, onehot)
        scaled = weights / total
        value = (scaled * loss).sum() + 0.5 * (penalty[:, None] * (coef**2).sum(axis=0)).sum()
        weighted = dlogits * scaled[:, :, None]
        grad_coef = (Z.T @ weighted.reshape(n, m * L)).reshape(r, m, L) + penalty[None, :, None] * coef
        grad_intercept = weighted.sum(axis=0)
        grad = np.concatenate(
            [(grad_coef * scale_coef[:, :, None]).ravel(), (grad_intercept * scale_intercept[:, None]).ravel()]
        )
        return value, grad

    if start is None:
        theta = np.zeros(r * m * L + m * L)
    else:
        coef, intercept = start
        theta = np.concatenate(
            [(coef / scale_coef[:, :, None]).ravel(), (intercept / scale_intercept[:, None]).ravel()]
        )
    options = {"maxiter": MAX_ITER, "gtol": GRADIENT_TOL, "ftol": 1e-12}
    result = minimize(objective, theta, jac=True, method="L-BFGS-B", options=options)
    return unpack(result.x)


def _loss_and_gradient(logits, labels, onehot):
    """Per-row loss [n, m] and its gradient with respect to the logits [n, m, L]."""
    if logits.shape[2] == 1:
        z = logits[:, :, 0]
        positive = labels == 1
        loss = np.logaddexp(0.0, z) - np.where(positive, z, 0.0)
        return loss, (expit(z) - positive)[:, :, None]
    log_proba = log_softmax(logits, axis=2)
    loss = -np.take_along_axis(log_proba, labels[:, :, None], axis=2)[:, :, 0]
    return loss, np.exp(log_proba) - onehot


def predict_proba(Z, coef, intercept):
    """Class probabilities [n, m, n_classes] of every column's model for the rows of Z."""
    r, m, L = coef.shape
    logits = (Z @ coef.reshape(r, m * L)).reshape(len(Z), m, L) + intercept
    if L == 1:
        positive = expit(logits[:, :, 0])
        return np.stack([1.0 - positive, positive], axis=2)
    return softmax(logits, axis=2)
