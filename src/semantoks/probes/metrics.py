"""Probe metrics computed column-wise, so the observed labels and every shuffled copy are scored at once.

Each function takes a matrix whose columns are independent problems (column 0 the observed labels,
the others label permutations) and returns one value per column. They match scikit-learn's
`balanced_accuracy_score`, `roc_auc_score` (macro one-vs-rest), `f1_score(average="macro")`,
`r2_score`, `mean_absolute_error` and Pearson's r on each column.
"""

import numpy as np
from scipy.stats import rankdata

CLASSIFICATION_METRICS = ("balanced_accuracy", "auroc", "f1_macro")
REGRESSION_METRICS = ("r2", "mae", "pearson_r")
LOWER_IS_BETTER = frozenset({"mae"})


def classification_metrics(labels, proba):
    """labels int [n, m] in 0..K-1, proba [n, m, K] -> {metric: [m]}; the prediction is the most probable class."""
    n_classes = proba.shape[2]
    predicted = proba.argmax(axis=2)
    truth = labels[:, :, None] == np.arange(n_classes)
    chosen = predicted[:, :, None] == np.arange(n_classes)
    tp = (truth & chosen).sum(axis=0).astype(float)
    n_true = truth.sum(axis=0).astype(float)
    n_pred = chosen.sum(axis=0).astype(float)
    present = n_true > 0
    recall = np.divide(tp, n_true, out=np.zeros_like(tp), where=present)
    balanced = recall.sum(axis=1) / present.sum(axis=1)
    denominator = n_true + n_pred
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    f1_macro = f1.sum(axis=1) / np.maximum((denominator > 0).sum(axis=1), 1)
    return {"balanced_accuracy": balanced, "auroc": _macro_auroc(truth, proba), "f1_macro": f1_macro}


def _macro_auroc(truth, proba):
    if proba.shape[2] == 2:
        return _auroc(truth[:, :, 1], proba[:, :, 1])
    per_class = [_auroc(truth[:, :, k], proba[:, :, k]) for k in range(proba.shape[2])]
    return np.mean(per_class, axis=0)


def _auroc(positive, score):
    """Mann-Whitney AUROC per column (ties count one half); NaN where a column has a single class."""
    ranks = rankdata(score, axis=0)
    n_pos = positive.sum(axis=0).astype(float)
    n_neg = positive.shape[0] - n_pos
    rank_sum = (ranks * positive).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def regression_metrics(truth, predicted):
    """truth and predicted [n, m] -> {metric: [m]}; Pearson r is 0 where a column's predictions are constant."""
    residual = truth - predicted
    centred_truth = truth - truth.mean(axis=0)
    total = (centred_truth**2).sum(axis=0)
    r2 = 1 - (residual**2).sum(axis=0) / np.where(total > 0, total, np.nan)
    centred_pred = predicted - predicted.mean(axis=0)
    spread = np.sqrt((centred_pred**2).sum(axis=0) * total)
    covariance = (centred_pred * centred_truth).sum(axis=0)
    pearson = np.divide(covariance, spread, out=np.zeros(truth.shape[1]), where=spread > 0)
    return {"r2": r2, "mae": np.abs(residual).mean(axis=0), "pearson_r": pearson}
