"""Per-phenotype linear probes of several feature sets on shared subject-grouped splits, with a label-shuffle null."""

import zlib
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from semantoks import __version__
from semantoks.atomic import write_json
from semantoks.errors import SemantoksError
from semantoks.probes.estimators import (
    LOGISTIC_CS,
    RIDGE_ALPHAS,
    SplitBasis,
    fit_logistic,
    fit_ridge,
    select_logistic_C,
)
from semantoks.dataset.keys import subject_key
from semantoks.probes.features import align_feature_sets
from semantoks.probes.fusion import add_fused_sets, split_features
from semantoks.probes.labels import expand_phenotype_specs, subject_labels, unusable_reason
from semantoks.probes.metrics import (
    CLASSIFICATION_METRICS,
    LOWER_IS_BETTER,
    REGRESSION_METRICS,
    classification_metrics,
    regression_metrics,
)
from semantoks.probes.nulls import subject_label_shuffles
from semantoks.probes.paired import paired_comparisons, paired_with_reference
from semantoks.probes.splits import scan_indices, scan_splits, site_splits, subject_folds, subject_splits
from semantoks.probes.summary import summarise
from semantoks.seeds import seed_groups, split_seed


def phenotype_seed(seed, name):
    """A seed per phenotype that does not depend on which other phenotypes run, or in what order."""
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)[0])


def probe_phenotype(
    feature_sets,
    phenotypes,
    name,
    spec,
    n_repeats=10,
    test_size=0.2,
    n_permutations=100,
    seed=0,
    inner_folds=5,
    min_subjects=10,
    out_json=None,
    n_threads=1,
    probed=None,
    reference=None,
    split="random",
    site_column=None,
    confounds=(),
):
    """Probe one phenotype (a resolved spec from `expand_phenotype_specs`) with every feature set.

    `feature_sets` holds file-level sets; `probed` names the sets to probe, fused ones (`model+network_fc`)
    included (default: every given set). Returns the per-phenotype record, with paired comparisons
    against the baselines, and writes it to `out_json` when given. `n_threads` caps BLAS threads: the
    matrices are small, and multithreaded BLAS on busy cores runs many times slower. With `reference`
    (the record of the same phenotype probed on other sets, same settings), the paired tests compare
    these sets with the reference's model and baselines on the same splits instead of with each other.
    `split` (`random`, `site_grouped`, `leave_site_out`) with `site_column`, the phenotype column naming each
    subject's site, keeps every site on one side of each split and of each inner fold. `confounds` (continuous
    phenotype columns, e.g. mean FD and TR) are regressed out of every feature set inside each split, the
    coefficients fitted on its training scans only.
    """
    if not feature_sets:
        raise SemantoksError("config.yaml: probe.feature_sets is empty; name at least one feature set to probe.")
    aligned, dropped = align_feature_sets(feature_sets)
    aligned, blocks = add_fused_sets(aligned, list(probed or feature_sets))
    meta = next(iter(aligned.values()))[0]
    labels = subject_labels(phenotypes, name, spec, meta)
    record = {
        "phenotype": name,
        "type": labels.kind,
        "source": spec["source"],
        "classes": labels.classes,
        "bin_edges": labels.bin_edges,
        "n_subjects": int(len(labels.values)),
        "dropped_scans": dropped,
        "settings": {
            "n_repeats": n_repeats,
            "test_size": test_size,
            "n_permutations": n_permutations,
            "seed": seed,
            "phenotype_seed": phenotype_seed(seed, name),
            "inner_folds": inner_folds,
            "min_subjects": min_subjects,
            "split": split,
            "site_column": site_column,
            "confounds": list(confounds),
            "ridge_alphas": list(RIDGE_ALPHAS),
            "logistic_Cs": list(LOGISTIC_CS),
            "semantoks_version": __version__,
        },
    }
    reason = unusable_reason(labels, inner_folds, min_subjects)
    if reason is None:
        sites = None if split == "random" else subject_sites(phenotypes, site_column, labels.subjects, meta)
        covariates = subject_confounds(phenotypes, confounds, labels.subjects, meta)
        with threadpool_limits(limits=n_threads, user_api="blas"):
            record.update(_probe(aligned, blocks, labels, record["settings"], sites, covariates))
        record.update(status="ok", reason="")
        record["paired"] = paired_comparisons(record) if reference is None else paired_with_reference(record, reference)
    else:
        record.update(status="skipped", reason=reason, n_scans=0, splits=[], feature_sets={n: {} for n in aligned})
        record["paired"] = []
    if out_json is not None:
        write_json(out_json, record)
    return record


def subject_sites(phenotypes, site_column, subjects, scan_meta):
    """The site (text) of each of `subjects` (subject keys), read from the phenotype column `site_column`."""
    if not site_column:
        raise SemantoksError("config.yaml: a site split needs probe.site_column, the phenotype column naming each "
                             "subject's site; set it or use probe.split: random.")
    spec = {"type": "categorical", "source": site_column}
    known = subject_labels(phenotypes, site_column, spec, scan_meta)
    site_of = dict(zip(known.subjects, np.asarray(known.classes, dtype=object)[known.values]))
    missing = [key for key in subjects if key not in site_of]
    if missing:
        raise SemantoksError(f"phenotype table: {len(missing)} probed subjects (e.g. {missing[0]}) have no "
                             f"{site_column}; fill it in or use probe.split: random.")
    return np.array([site_of[key] for key in subjects], dtype=object)


def subject_confounds(phenotypes, confounds, subjects, scan_meta):
    """[n_subjects, n_confounds] values of the continuous phenotype columns `confounds`; None when none are asked."""
    if not confounds:
        return None
    columns = []
    for column in confounds:
        known = subject_labels(phenotypes, column, {"type": "continuous", "source": column}, scan_meta)
        value_of = dict(zip(known.subjects, known.values))
        missing = [key for key in subjects if key not in value_of]
        if missing:
            raise SemantoksError(f"phenotype table: {len(missing)} probed subjects (e.g. {missing[0]}) have no "
                                 f"{column}; fill it in or remove it from probe.confounds.")
        columns.append([value_of[key] for key in subjects])
    return np.array(columns, dtype=np.float64).T


def regress_confounds(X_train, X_test, C_train, C_test):
    """Features minus their least-squares fit on the confounds (with intercept), fitted on training rows only."""
    design_train = np.column_stack([np.ones(len(C_train)), C_train])
    coef, *_ = np.linalg.lstsq(design_train, X_train, rcond=None)
    design_test = np.column_stack([np.ones(len(C_test)), C_test])
    return X_train - design_train @ coef, X_test - design_test @ coef


def _probe(aligned, blocks, labels, settings, sites=None, covariates=None):
    meta = next(iter(aligned.values()))[0]
    position = {key: i for i, key in enumerate(labels.subjects)}
    scan_keys = [subject_key(c, s) for c, s in zip(meta["cohort"].astype(str), meta["subject"].astype(str))]
    scan_subject = np.array([position.get(key, -1) for key in scan_keys])
    rows = np.flatnonzero(scan_subject >= 0)
    scan_subject = scan_subject[rows]
    rng_seed = settings["phenotype_seed"]
    if sites is None:
        splits = subject_splits(
            np.arange(len(labels.values)),
            labels.values if labels.is_classification else None,
            settings["n_repeats"],
            settings["test_size"],
            seed=rng_seed,
        )
    else:
        splits = site_splits(np.arange(len(labels.values)), sites, settings["split"], settings["n_repeats"],
                             settings["test_size"], seed=rng_seed)
    label_columns = _shuffled_label_columns(labels.values, settings["n_permutations"], rng_seed)
    scan_level = scan_splits(scan_subject, splits)
    results = {}
    for feature_set, (_, X) in aligned.items():
        results[feature_set] = _probe_feature_set(
            feature_set, X[rows], scan_subject, labels, scan_level, label_columns, settings, blocks.get(feature_set),
            sites, covariates,
        )
    return {
        "n_scans": int(len(rows)),
        "splits": [
            {"train": labels.subjects[train].tolist(), "test": labels.subjects[test].tolist()} for train, test in splits
        ],
        "feature_sets": pool_seeds(results),
    }


def pool_seeds(results):
    """Results with each set probed at several seeds pooled under its own name (semantoks/seeds.py), placed
    before its per-seed entries; a set drawn at one seed is simply renamed. Every seed shares the splits
    and the label permutations, so the pooled null is the seed mean of each permutation's score."""
    groups = seed_groups(results)
    pooled = {}
    for name, result in results.items():
        base = split_seed(name)[0]
        if base not in groups:
            pooled[name] = result
            continue
        drawn = groups[base]
        if base not in pooled:
            merged = result if len(drawn) == 1 else _pooled_result([results[n] for n in drawn])
            pooled[base] = {**merged, "seeds": [split_seed(n)[1] for n in drawn]}
        if len(drawn) > 1:
            pooled[name] = result
    return pooled


def _pooled_result(drawn):
    result = {"metrics": {}, "summary": {}}
    for metric, summary in drawn[0]["summary"].items():
        observed = _seed_mean([r["metrics"][metric] for r in drawn])
        null = _seed_mean([r["summary"][metric]["null"] for r in drawn])
        seed_means = [r["summary"][metric]["mean"] for r in drawn]
        finite = [m for m in seed_means if m is not None]
        result["metrics"][metric] = [_finite_or_none(v) for v in observed]
        result["summary"][metric] = {
            **_metric_summary(metric, observed, null),
            "seed_means": seed_means,
            "seed_min": min(finite) if finite else None,
            "seed_max": max(finite) if finite else None,
        }
    return result


def _seed_mean(per_seed):
    """Mean over seeds per position, NaN where any seed has no score (the seeds must agree on what is scored)."""
    values = np.array([[np.nan if v is None else v for v in row] for row in per_seed], dtype=np.float64)
    return values.mean(axis=0)


def _shuffled_label_columns(values, n_permutations, seed):
    """Subject labels as columns: the observed ones first, then one subject-level permutation per column."""
    return np.concatenate([values[:, None], subject_label_shuffles(values, None, n_permutations, seed).T], axis=1)


def _probe_feature_set(name, X, scan_subject, labels, scan_level, label_columns, settings, blocks=None, sites=None,
                       covariates=None):
    per_repeat, hyperparameters = [], []
    for repeat, (train, test) in enumerate(scan_level):
        # sets with statistics of their own (tangent FC's reference) fit them on this split's training scans
        X_train, X_test, split_blocks = split_features(name, X[train], X[test], blocks)
        if covariates is not None:
            X_train, X_test = regress_confounds(X_train, X_test, covariates[scan_subject[train]],
                                                covariates[scan_subject[test]])
        basis = SplitBasis(X_train, split_blocks)
        Y = label_columns[scan_subject[train]]
        if labels.is_classification:
            folds = _inner_folds(scan_subject[train], label_columns[:, 0], settings, repeat, sites)
            C = select_logistic_C(basis.train_scores, Y[:, 0], folds)
            scan_proba = fit_logistic(basis.train_scores, Y, C, basis.project(X_test), len(labels.classes))
            subjects, proba = _subject_means(scan_subject[test], scan_proba)
            scores = classification_metrics(label_columns[subjects], proba)
            hyperparameters.append({"C": float(C)})
        else:
            scan_pred, alphas = fit_ridge(basis, Y.astype(np.float64), scan_subject[train], X_test)
            subjects, predicted = _subject_means(scan_subject[test], scan_pred)
            scores = regression_metrics(label_columns[subjects], predicted)
            hyperparameters.append({"alpha": float(alphas[0])})
        per_repeat.append(scores)
    return _summarise_repeats(per_repeat, hyperparameters, labels.is_classification)


def _inner_folds(train_scan_subject, subject_values, settings, repeat, sites=None):
    """Inner CV folds over the training subjects, stratified on their labels (grouped by site when `sites`
    holds more than one training site), expanded to scan positions."""
    subjects = np.unique(train_scan_subject)
    values = subject_values[subjects]
    groups = sites[subjects] if sites is not None and len(np.unique(sites[subjects])) > 1 else None
    n_folds = int(min(settings["inner_folds"], np.bincount(values)[np.unique(values)].min()))
    folds = subject_folds(values, n_folds=max(n_folds, 2), seed=(settings["phenotype_seed"] + repeat) % 2**32,
                          groups=groups)
    return [
        (scan_indices(train_scan_subject, subjects[fit]), scan_indices(train_scan_subject, subjects[valid]))
        for fit, valid in folds
    ]


def _subject_means(scan_subject, scan_values):
    """Average scan-level predictions [n_scans, ...] per subject: (subject positions, means [n_subjects, ...])."""
    subjects, inverse = np.unique(scan_subject, return_inverse=True)
    weights = (inverse[None, :] == np.arange(len(subjects))[:, None]).astype(np.float64)
    weights /= weights.sum(axis=1, keepdims=True)
    return subjects, np.tensordot(weights, scan_values, axes=(1, 0))


def _summarise_repeats(per_repeat, hyperparameters, is_classification):
    names = CLASSIFICATION_METRICS if is_classification else REGRESSION_METRICS
    result = {"hyperparameters": hyperparameters, "metrics": {}, "summary": {}}
    for metric in names:
        values = np.array([scores[metric] for scores in per_repeat])
        observed = values[:, 0]
        result["metrics"][metric] = [_finite_or_none(v) for v in observed]
        result["summary"][metric] = _metric_summary(metric, observed, np.nanmean(values[:, 1:], axis=0))
    return result


def _metric_summary(metric, observed, null):
    """Mean/SD over repeats, the shuffled-label null (mean over the same repeats per permutation), its p-value."""
    finite = observed[np.isfinite(observed)]
    mean = float(finite.mean()) if len(finite) else float("nan")
    summary = {
        "mean": _finite_or_none(mean),
        "sd": float(finite.std(ddof=1)) if len(finite) > 1 else None,
        "n_repeats": int(len(finite)),
        "p_value": None,
        "shuffled_mean": None,
        "shuffled_sd": None,
        "null": [_finite_or_none(v) for v in null],
    }
    null = null[np.isfinite(null)]
    if len(null) and np.isfinite(mean):
        beats = null <= mean if metric in LOWER_IS_BETTER else null >= mean
        summary.update(
            p_value=float((1 + beats.sum()) / (1 + len(null))),
            shuffled_mean=float(null.mean()),
            shuffled_sd=float(null.std(ddof=1)) if len(null) > 1 else None,
        )
    return summary


def _finite_or_none(value):
    return float(value) if np.isfinite(value) else None


def run_probes(
    feature_sets,
    phenotypes,
    phenotype_specs,
    n_repeats=10,
    test_size=0.2,
    n_permutations=100,
    seed=0,
    out_dir="results/probes",
    inner_folds=5,
    min_subjects=10,
    n_threads=1,
    probed=None,
    split="random",
    site_column=None,
    confounds=(),
):
    """Probe every phenotype in `phenotype_specs` (config form); writes `<phenotype>.json`, `summary.tsv`
    and `paired.tsv`."""
    out_dir = Path(out_dir)
    json_paths = []
    for name, spec in expand_phenotype_specs(phenotype_specs, phenotypes.attrs.get("phenotype_types")).items():
        path = out_dir / f"{name}.json"
        probe_phenotype(
            feature_sets,
            phenotypes,
            name,
            spec,
            n_repeats=n_repeats,
            test_size=test_size,
            n_permutations=n_permutations,
            seed=seed,
            inner_folds=inner_folds,
            min_subjects=min_subjects,
            out_json=path,
            n_threads=n_threads,
            probed=probed,
            split=split,
            site_column=site_column,
            confounds=confounds,
        )
        json_paths.append(path)
    return summarise(json_paths, out_dir / "summary.tsv", out_dir / "paired.tsv")
