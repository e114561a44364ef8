"""Scores of the language evaluation: text retrieval against chance, ridge maps, few-shot and label transfer."""

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from semantoks.probes.nulls import subject_label_shuffles

RIDGE_ALPHAS = np.logspace(-2, 4, 13)
RANK_CONVENTION = ("pessimistic ranks among the distinct held-out texts: a text tied with the own text counts "
                   "as ranked above it; chance from the number of distinct texts")


def unit_rows(x):
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def distinct_texts(truth, decimals=6):
    """(distinct text vectors [m, d], index of each truth row's distinct text): equal texts embed to equal rows."""
    rounded = np.round(unit_rows(truth), decimals)
    _, first, inverse = np.unique(rounded, axis=0, return_index=True, return_inverse=True)
    return np.asarray(truth)[first], inverse.ravel()


def retrieval(predicted, truth, tolerance=1e-9):
    """Each predicted row retrieves its own text among the distinct truth texts by cosine: top-1, top-5, MRR.

    Candidates are the distinct texts (scans with the same text share one candidate). Ranks are
    pessimistic: a candidate tied with the own text (within `tolerance`) counts as ranked above it, so
    a prediction that cannot tell texts apart never scores above chance by ties. Chance is that of a
    random order of the m distinct texts: 1/m, min(5, m)/m and mean(1/r) over r = 1..m.
    """
    candidates, own_index = distinct_texts(truth)
    similarity = unit_rows(predicted) @ unit_rows(candidates).T
    own = similarity[np.arange(len(similarity)), own_index]
    others = np.ones_like(similarity, dtype=bool)
    others[np.arange(len(similarity)), own_index] = False
    rank = 1 + ((similarity >= own[:, None] - tolerance) & others).sum(axis=1)
    m = len(candidates)
    return {"n": int(len(truth)), "n_distinct_texts": int(m), "top1": float((rank == 1).mean()),
            "top5": float((rank <= 5).mean()), "mrr": float((1.0 / rank).mean()), "chance_top1": 1.0 / m,
            "chance_top5": min(5, m) / m, "chance_mrr": float((1.0 / np.arange(1, m + 1)).mean())}


def constant_prediction(Y_train, n_test):
    """The scan-blind prediction: the training targets' mean text vector for every held-out row."""
    return np.repeat(np.asarray(Y_train, dtype=np.float64).mean(axis=0, keepdims=True), n_test, axis=0)


def ridge_predict(X_train, Y_train, X_test):
    """Standardised ridge (alpha by efficient LOO) from features to text vectors, fitted on training rows only."""
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
    return model.fit(X_train, Y_train).predict(X_test)


def nearest_prompt(predicted, prompts):
    """Index of the prompt nearest (by cosine) each predicted vector."""
    return np.argmax(unit_rows(predicted) @ unit_rows(prompts).T, axis=1)


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
            scores.append(balanced_accuracy_score(y_test, logistic_predict(X_train[rows], y_train[rows], X_test)))
        curve.append({"k": int(k), "mean": float(np.mean(scores)), "sd": float(np.std(scores)), "reason": None})
    return curve


def logistic_predict(X_train, y_train, X_test, C=1.0):
    """Classes of X_test from a standardised logistic regression (fixed C) fitted on the training rows only."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=500))
    return model.fit(X_train, y_train).predict(X_test)
