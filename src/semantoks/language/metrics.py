"""Scores of the language evaluation: text retrieval against chance, ridge maps, few-shot and zero-shot."""

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from semantoks.probes.nulls import subject_label_shuffles

RIDGE_ALPHAS = np.logspace(-2, 4, 13)


def unit_rows(x):
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def retrieval(predicted, truth):
    """Each predicted row retrieves among all truth rows by cosine: top-1, top-5, MRR and their chance levels."""
    similarity = unit_rows(predicted) @ unit_rows(truth).T
    own = np.diag(similarity)
    rank = 1 + (similarity > own[:, None]).sum(axis=1)
    n = len(truth)
    return {"n": int(n), "top1": float((rank == 1).mean()), "top5": float((rank <= 5).mean()),
            "mrr": float((1.0 / rank).mean()), "chance_top1": 1.0 / n, "chance_top5": min(5, n) / n,
            "chance_mrr": float((1.0 / np.arange(1, n + 1)).mean())}


def ridge_predict(X_train, Y_train, X_test):
    """Standardised ridge (alpha by efficient LOO) from features to text vectors, fitted on training rows only."""
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
    return model.fit(X_train, Y_train).predict(X_test)


def nearest_prompt(predicted, prompts):
    """Index of the prompt nearest (by cosine) each predicted vector."""
    return np.argmax(unit_rows(predicted) @ unit_rows(prompts).T, axis=1)


def zero_shot(predicted, prompts, labels, n_permutations=200, seed=0, subjects=None, strata=None):
    """Class = the prompt nearest each predicted vector; balanced accuracy and its label-shuffle null."""
    return shuffle_null_score(nearest_prompt(predicted, prompts), labels, n_permutations, seed, subjects, strata)


def shuffle_null_score(choice, labels, n_permutations=200, seed=0, subjects=None, strata=None):
    """Balanced accuracy of fixed predictions and its null with the labels shuffled.

    With `subjects`, whole subjects' labels are permuted (their scans keep one label); with `strata`
    (e.g. cohorts), only within each stratum, so a pooled null keeps every cohort's class balance.
    """
    labels = np.asarray(labels)
    score = balanced_accuracy_score(labels, choice)
    shuffles = subject_label_shuffles(labels, subjects, n_permutations, seed, strata)
    null = np.array([balanced_accuracy_score(shuffled, choice) for shuffled in shuffles])
    units = np.unique(np.arange(len(labels)) if subjects is None else np.asarray(subjects))
    return {"balanced_accuracy": float(score), "null_mean": float(null.mean()), "null_sd": float(null.std()),
            "null_p95": float(np.quantile(null, 0.95)),
            "p_value": float((1 + (null >= score).sum()) / (1 + n_permutations)), "n": int(len(labels)),
            "n_subjects": int(len(units))}


def few_shot(X_train, y_train, X_test, y_test, ks=(1, 2, 4, 8, 16), draws=20, seed=0):
    """Balanced accuracy of a logistic probe from k training rows per class, over `draws` random draws."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y_train)
    curve = []
    for k in ks:
        if any((y_train == c).sum() < k for c in classes) or len(classes) < 2:
            curve.append({"k": int(k), "mean": None, "sd": None, "reason": f"fewer than {k} training rows in a class"})
            continue
        scores = []
        for _ in range(draws):
            rows = np.concatenate([rng.choice(np.flatnonzero(y_train == c), k, replace=False) for c in classes])
            model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500))
            scores.append(balanced_accuracy_score(y_test, model.fit(X_train[rows], y_train[rows]).predict(X_test)))
        curve.append({"k": int(k), "mean": float(np.mean(scores)), "sd": float(np.std(scores)), "reason": None})
    return curve
