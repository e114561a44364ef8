"""Probe speed: `run_probes` against the same protocol as a plain loop of scikit-learn `cross_val_score` calls.

10 phenotypes (5 binary, 5 continuous) x 10 repeats on 1,000 subjects (one scan each) with 1,536-d
random features carrying a planted signal. Both sides use the same outer splits, the same C and
alpha grids and the same inner CV (5-fold stratified for C, leave-one-out for alpha, which with one
scan per subject is leave-one-subject-out). The reference has no label-shuffle null, so the timed
comparison runs `run_probes` with n_permutations=0; the cost of the null is timed separately.
Both sides run under the same BLAS thread limit (--threads).

    python benchmarks/probes.py [--subjects 1000] [--features 1536] [--repeats 10] [--permutations 100] [--threads 1]
"""

import argparse
import tempfile
import time

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from semantoks.probes import run_probes
from semantoks.probes.estimators import LOGISTIC_CS, RIDGE_ALPHAS
from semantoks.probes.logistic import MAX_ITER
from semantoks.probes.labels import expand_phenotype_specs, subject_labels
from semantoks.probes.probe import phenotype_seed
from semantoks.probes.splits import subject_splits

N_BINARY = 5
N_CONTINUOUS = 5


def planted_dataset(n_subjects, n_features, seed=0):
    """Features = latent factors through random loadings + noise; phenotype k reads latent factor k."""
    rng = np.random.default_rng(seed)
    n_latent = N_BINARY + N_CONTINUOUS
    latent = rng.normal(size=(n_subjects, n_latent))
    X = 0.15 * latent @ rng.normal(size=(n_latent, n_features)) + rng.normal(size=(n_subjects, n_features))
    subjects = [f"{i:04d}" for i in range(n_subjects)]
    meta = pd.DataFrame({"cohort": "bench", "scan_id": [f"sub-{s}" for s in subjects], "subject": subjects})
    phenotypes = {"subject": subjects}
    specs = {}
    for k in range(n_latent):
        signal = latent[:, k] + rng.normal(size=n_subjects)
        if k < N_BINARY:
            phenotypes[f"binary{k}"] = np.where(signal > 0, "yes", "no")
            specs[f"binary{k}"] = {"type": "binary"}
        else:
            phenotypes[f"continuous{k}"] = signal
            specs[f"continuous{k}"] = {"type": "continuous"}
    return meta, X, pd.DataFrame(phenotypes), specs


def reference_protocol(meta, X, phenotypes, specs, n_repeats, seed):
    """The same protocol, one `cross_val_score` per phenotype over the same outer splits."""
    means = {}
    for name, spec in expand_phenotype_specs(specs).items():
        labels = subject_labels(phenotypes, name, spec, meta)
        pseed = phenotype_seed(seed, name)
        stratify = labels.values if labels.is_classification else None
        splits = subject_splits(np.arange(len(labels.values)), stratify, n_repeats, 0.2, seed=pseed % 2**32)
        if labels.is_classification:
            inner = StratifiedKFold(5, shuffle=True, random_state=pseed % 2**32)
            model = LogisticRegressionCV(
                Cs=list(LOGISTIC_CS), cv=inner, scoring="neg_log_loss", class_weight="balanced", max_iter=MAX_ITER,
                l1_ratios=(0.0,), use_legacy_attributes=False,
            )
            scoring = "balanced_accuracy"
        else:
            model, scoring = RidgeCV(alphas=RIDGE_ALPHAS), "r2"
        scores = cross_val_score(make_pipeline(StandardScaler(), model), X, labels.values, cv=splits, scoring=scoring)
        means[name] = scores.mean()
    return means


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--features", type=int, default=1536)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    meta, X, phenotypes, specs = planted_dataset(args.subjects, args.features)
    feature_sets = {"embedding": (meta, X)}

    with tempfile.TemporaryDirectory() as out_dir:
        start = time.perf_counter()
        summary = run_probes(
            feature_sets,
            phenotypes,
            specs,
            n_repeats=args.repeats,
            n_permutations=0,
            out_dir=out_dir,
            n_threads=args.threads,
        )
        ours = time.perf_counter() - start

    start = time.perf_counter()
    with threadpool_limits(limits=args.threads, user_api="blas"):
        reference = reference_protocol(meta, X, phenotypes, specs, args.repeats, seed=0)
    theirs = time.perf_counter() - start

    primary = summary[summary["metric"].isin(["balanced_accuracy", "r2"])].set_index("phenotype")["mean"]
    print("phenotype      semantoks  cross_val_score")
    for name, value in reference.items():
        print(f"{name:<14} {primary[name]:9.3f}  {value:15.3f}")
    print(f"{args.subjects} subjects x {args.features} features, {len(specs)} phenotypes x {args.repeats} repeats")
    print(f"run_probes (no null):     {ours:7.1f} s")
    print(f"cross_val_score loop:     {theirs:7.1f} s")
    print(f"speed-up:                 {theirs / ours:7.2f}x")

    if args.permutations:
        with tempfile.TemporaryDirectory() as out_dir:
            start = time.perf_counter()
            run_probes(
                feature_sets,
                phenotypes,
                specs,
                n_repeats=args.repeats,
                n_permutations=args.permutations,
                out_dir=out_dir,
                n_threads=args.threads,
            )
            with_null = time.perf_counter() - start
        print(f"run_probes + {args.permutations} shuffles: {with_null:7.1f} s")


if __name__ == "__main__":
    main()
