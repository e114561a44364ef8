"""Scores of the language evaluation: text retrieval against chance, ridge maps, few-shot and zero-shot."""

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

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


def zero_shot(predicted, prompts, labels, n_permutations=200, seed=0):
    """Class = the prompt nearest each predicted vector; balanced accuracy and its label-shuffle null."""
    choice = np.argmax(unit_rows(predicted) @ unit_rows(prompts).T, axis=1)
    labels = np.asarray(labels)
    score = balanced_accuracy_score(labels, choice)
    rng = np.random.default_rng(seed)
    null = np.array([balanced_accuracy_score(rng.permutation(labels), choice) for _ in range(n_permutations)])
    return {"balanced_accuracy": float(score), "null_mean": float(null.mean()), "null_sd": float(null.std()),
            "p_value": float((1 + (null >= score).sum()) / (1 + n_permutations)), "n": int(len(labels))}


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
