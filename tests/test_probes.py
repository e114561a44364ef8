import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import pearsonr
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import balanced_accuracy_score, f1_score, mean_absolute_error, r2_score, roc_auc_score

from semantoks.dataset import build_partition
from semantoks.errors import SemantoksError
from semantoks.phenotypes import build_phenotype_table, held_out_by_value
from semantoks.probes import (
    align_feature_sets,
    expand_phenotype_specs,
    phenotype_job_names,
    probe_phenotype,
    run_probes,
    subject_splits,
    summarise,
)
from semantoks.probes.estimators import RIDGE_ALPHAS, SplitBasis, fit_ridge, ridge_subject_cv_errors
from semantoks.features.table import read_feature_table, write_feature_table
from semantoks.probes.load import load_feature_sets, load_phenotypes, static_feature_set
from semantoks.probes.logistic import balanced_weights, fit_logistic_columns, predict_proba
from semantoks.probes.metrics import classification_metrics, regression_metrics
from semantoks.probes.probe import regress_confounds
from semantoks.probes.splits import scan_splits, site_splits, subject_folds
from semantoks.probes.summary import SUMMARY_COLUMNS

COBRE_NAN_ROWS = [7, 23, 86, 99, 119]


@pytest.fixture(scope="module")
def cobre(shared_data):
    """COBRE FC (lower-triangle correlations) as Fisher-z features with diagnosis, sex and age."""
    folder = shared_data / "cobre_fc"
    correlations = np.load(folder / "COBRE_features.npz")["a"]
    target = pd.read_csv(folder / "Target.csv")
    subjects = target["ID"].astype(str)
    meta = pd.DataFrame({"cohort": "cobre", "scan_id": "sub-" + subjects, "subject": subjects})
    with np.errstate(invalid="ignore"):
        X = np.arctanh(np.clip(correlations, -0.999999, 0.999999))
    phenotypes = pd.DataFrame(
        {
            "subject": subjects,
            "diagnosis": target["Cat"].map({1: "patient", 0: "control"}),
            "sex": target["Gen"].map({1: "male", 0: "female"}),
            "age": target["Age"].astype(float),
        }
    )
    return {"fc": (meta, X)}, phenotypes


@pytest.fixture(scope="module")
def cobre_results(cobre, tmp_path_factory):
    feature_sets, phenotypes = cobre
    out = tmp_path_factory.mktemp("cobre_probes")
    specs = {"diagnosis": {"type": "binary"}, "sex": {"type": "binary"}, "age": {"type": "continuous"}}
    summary = run_probes(feature_sets, phenotypes, specs, n_repeats=10, n_permutations=50, seed=0, out_dir=out)
    return summary.set_index(["phenotype", "metric"]), out


@pytest.mark.parametrize("phenotype", ["diagnosis", "sex"])
def test_cobre_diagnosis_and_sex_beat_their_shuffled_label_null(cobre_results, phenotype):
    summary, _ = cobre_results
    for metric in ("auroc", "balanced_accuracy"):
        row = summary.loc[(phenotype, metric)]
        assert row["status"] == "ok"
        assert row["p_value"] < 0.05
        assert row["mean"] > row["shuffled_mean"] + 0.05


@pytest.mark.parametrize("phenotype", ["diagnosis", "sex"])
def test_cobre_shuffled_labels_sit_at_chance(cobre_results, phenotype):
    # a test set holds ~29 subjects, so one split's null balanced accuracy has SD ~0.09; averaged over
    # 10 repeats and 50 permutations the shuffled mean has SD < 0.01: 0.03 is 3+ SDs
    summary, _ = cobre_results
    assert summary.loc[(phenotype, "balanced_accuracy"), "shuffled_mean"] == pytest.approx(0.5, abs=0.03)
    assert summary.loc[(phenotype, "auroc"), "shuffled_mean"] == pytest.approx(0.5, abs=0.03)


def test_cobre_age_is_predicted_above_the_null(cobre_results):
    summary, _ = cobre_results
    assert summary.loc[("age", "r2"), "mean"] > 0
    assert summary.loc[("age", "pearson_r"), "p_value"] < 0.05
    assert summary.loc[("age", "mae"), "mean"] < summary.loc[("age", "mae"), "shuffled_mean"]


def test_cobre_scans_with_non_finite_features_are_dropped_and_counted(cobre, cobre_results):
    _, phenotypes = cobre
    _, out = cobre_results
    record = json.loads((out / "sex.json").read_text())
    assert record["dropped_scans"]["fc"]["non_finite"] == len(COBRE_NAN_ROWS)
    assert record["n_subjects"] == 146 - len(COBRE_NAN_ROWS)
    everyone = set(record["splits"][0]["train"]) | set(record["splits"][0]["test"])
    dropped = {f"cobre/{phenotypes['subject'].iloc[row]}" for row in COBRE_NAN_ROWS}
    assert len(everyone) == 141 and not dropped & everyone


def fingerprint_dataset(n_subjects=40, scans_per_subject=(1, 2, 3, 4), n_features=120, seed=0):
    """Each subject's scans are near-copies of one random fingerprint; labels are random per subject."""
    rng = np.random.default_rng(seed)
    rows, meta = [], []
    for s in range(n_subjects):
        fingerprint = rng.normal(size=n_features)
        for k in range(scans_per_subject[s % len(scans_per_subject)]):
            rows.append(fingerprint + 0.05 * rng.normal(size=n_features))
            meta.append({"cohort": "fab", "scan_id": f"sub-{s:02d}_run-{k}", "subject": f"{s:02d}"})
    subjects = [f"{s:02d}" for s in range(n_subjects)]
    phenotypes = pd.DataFrame(
        {
            "subject": subjects,
            "group": rng.permutation(np.repeat(["a", "b"], n_subjects // 2)),
            "score": rng.normal(size=n_subjects),
        }
    )
    return pd.DataFrame(meta), np.array(rows), phenotypes


def test_no_subject_is_split_across_train_and_test_in_any_repeat():
    meta, _, phenotypes = fingerprint_dataset()
    subjects = phenotypes["subject"].to_numpy()
    splits = subject_splits(subjects, phenotypes["group"].to_numpy(), n_repeats=25, seed=3)
    scan_level = scan_splits(meta["subject"].to_numpy(), splits)
    for (train_subjects, test_subjects), (train, test) in zip(splits, scan_level):
        assert not set(meta["subject"].iloc[train]) & set(meta["subject"].iloc[test])
        assert len(train) + len(test) == len(meta)
        assert set(train_subjects).isdisjoint(test_subjects)
        # stratified: each class keeps its share of the 20% test subjects
        assert (phenotypes.set_index("subject").loc[test_subjects, "group"] == "a").sum() == 4


def test_near_duplicate_scans_of_a_subject_do_not_leak_into_test_accuracy(tmp_path):
    # if scans were split instead of subjects, the test scans' near-copies in training would give ~100%
    meta, X, phenotypes = fingerprint_dataset()
    record = probe_phenotype(
        {"emb": (meta, X)}, phenotypes, "group", {"type": "binary", "source": "group"},
        n_repeats=10, n_permutations=0, out_json=tmp_path / "group.json",
    )
    for split in record["splits"]:
        assert set(split["train"]).isdisjoint(split["test"])
    assert record["feature_sets"]["emb"]["summary"]["balanced_accuracy"]["mean"] < 0.7


def test_ridge_alpha_is_chosen_leaving_out_whole_subjects():
    meta, X, phenotypes = fingerprint_dataset(scans_per_subject=(3,))
    y = phenotypes.set_index("subject").loc[meta["subject"], "score"].to_numpy()
    basis = SplitBasis(X)
    grouped, _, _ = ridge_subject_cv_errors(basis, y[:, None], meta["subject"].to_numpy(), RIDGE_ALPHAS)
    per_scan, _, _ = ridge_subject_cv_errors(basis, y[:, None], np.arange(len(y)), RIDGE_ALPHAS)
    # scan-level LOO sees the held-out scan's twins and finds a near-perfect fit of pure noise at weak
    # penalties; leaving whole subjects out shows there is nothing to predict
    assert per_scan.min() < 0.01 * y.var()
    assert grouped.min() > 0.7 * y.var()
    _, chosen = fit_ridge(basis, y[:, None], meta["subject"].to_numpy(), X[:2])
    assert chosen[0] == RIDGE_ALPHAS[int(np.argmin(grouped[:, 0]))]


def test_ridge_leave_one_subject_out_matches_refitting_without_each_subject():
    rng = np.random.default_rng(1)
    X, groups = rng.normal(size=(36, 50)), np.repeat(np.arange(12), 3)
    y = X[:, 0] + rng.normal(size=36)
    basis = SplitBasis(X)
    standardised = (X - basis.mean) / basis.scale
    alphas = (0.5, 7.0, 300.0)
    fast, _, _ = ridge_subject_cv_errors(basis, y[:, None], groups, alphas)
    for a, alpha in enumerate(alphas):
        held_out_errors = []
        for g in range(12):
            held = groups == g
            model = Ridge(alpha=alpha).fit(standardised[~held], y[~held])
            held_out_errors.extend(y[held] - model.predict(standardised[held]))
        assert fast[a, 0] == pytest.approx(np.mean(np.square(held_out_errors)), rel=1e-8)
    predictions, chosen = fit_ridge(basis, y[:, None], groups, X[:4], alphas=alphas)
    assert chosen[0] == alphas[int(np.argmin(fast[:, 0]))]
    full = Ridge(alpha=chosen[0]).fit(standardised, y)
    np.testing.assert_allclose(predictions[:, 0], full.predict(standardised[:4]), rtol=1e-8)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_batched_logistic_matches_sklearn(n_classes):
    rng = np.random.default_rng(n_classes)
    X = rng.normal(size=(90, 40))
    y = np.digitize(X[:, 0] + rng.normal(size=90), np.quantile(X[:, 0], np.linspace(0, 1, n_classes + 1)[1:-1]))
    labels = np.stack([y, rng.permutation(y), rng.permutation(y)], axis=1)
    weights = balanced_weights(labels, np.ones(labels.shape, dtype=bool))
    coef, intercept = fit_logistic_columns(X, labels, weights, 0.3, n_classes)
    ours = predict_proba(X, coef, intercept)
    for j in range(labels.shape[1]):
        reference = LogisticRegression(C=0.3, class_weight="balanced", tol=1e-10, max_iter=10000).fit(X, labels[:, j])
        np.testing.assert_allclose(ours[:, j], reference.predict_proba(X), atol=2e-4)


def test_logistic_in_the_split_basis_equals_logistic_on_the_features():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 120))
    y = (X[:, :3].sum(axis=1) > 0).astype(int)
    basis = SplitBasis(X)
    weights = balanced_weights(y[:, None], np.ones((40, 1), dtype=bool))
    coef, intercept = fit_logistic_columns(basis.train_scores, y[:, None], weights, 0.05, 2)
    X_new = rng.normal(size=(10, 120))
    ours = predict_proba(basis.project(X_new), coef, intercept)[:, 0]
    standardised = (X - basis.mean) / basis.scale
    reference = LogisticRegression(C=0.05, class_weight="balanced", tol=1e-10, max_iter=10000).fit(standardised, y)
    np.testing.assert_allclose(ours, reference.predict_proba((X_new - basis.mean) / basis.scale), atol=2e-4)


def test_metrics_match_sklearn_column_by_column():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, size=(30, 4))
    proba = rng.dirichlet(np.ones(3), size=(30, 4))
    ours = classification_metrics(labels, proba)
    binary = classification_metrics(labels % 2, np.stack([1 - proba[:, :, 0], proba[:, :, 0]], axis=2))
    truth, predicted = rng.normal(size=(25, 4)), rng.normal(size=(25, 4))
    regression = regression_metrics(truth, predicted)
    for j in range(4):
        chosen = proba[:, j].argmax(axis=1)
        assert ours["balanced_accuracy"][j] == pytest.approx(balanced_accuracy_score(labels[:, j], chosen))
        assert ours["f1_macro"][j] == pytest.approx(f1_score(labels[:, j], chosen, average="macro"))
        assert ours["auroc"][j] == pytest.approx(roc_auc_score(labels[:, j], proba[:, j], multi_class="ovr"))
        assert binary["auroc"][j] == pytest.approx(roc_auc_score(labels[:, j] % 2, proba[:, j, 0]))
        assert regression["r2"][j] == pytest.approx(r2_score(truth[:, j], predicted[:, j]))
        assert regression["mae"][j] == pytest.approx(mean_absolute_error(truth[:, j], predicted[:, j]))
        assert regression["pearson_r"][j] == pytest.approx(pearsonr(truth[:, j], predicted[:, j])[0])


def test_feature_sets_round_trip_and_align_on_finite_shared_scans(tmp_path):
    meta = pd.DataFrame({"cohort": "c", "scan_id": ["a", "b", "c"], "subject": ["1", "2", "3"], "session": [None] * 3})
    X = np.arange(6, dtype=float).reshape(3, 2)
    write_feature_table(tmp_path / "emb.parquet", meta, X)
    loaded_meta, loaded_X, _ = read_feature_table(tmp_path / "emb.parquet")
    np.testing.assert_array_equal(loaded_X, X)
    assert list(loaded_meta["scan_id"]) == ["a", "b", "c"]
    other = X[::-1].copy()
    other[0, 0] = np.nan
    aligned, dropped = align_feature_sets({"emb": (loaded_meta, loaded_X), "fc": (meta.iloc[::-1], other)})
    assert list(aligned["emb"][0]["scan_id"]) == list(aligned["fc"][0]["scan_id"]) == ["a", "b"]
    np.testing.assert_array_equal(aligned["emb"][1], aligned["fc"][1])
    assert dropped == {"emb": {"non_finite": 0, "not_in_every_set": 1}, "fc": {"non_finite": 1, "not_in_every_set": 0}}


def small_cohort(n_subjects=60, seed=0):
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n_subjects)
    X = np.outer(signal, rng.normal(size=30)) + rng.normal(size=(n_subjects, 30))
    subjects = [f"{i:02d}" for i in range(n_subjects)]
    meta = pd.DataFrame({"cohort": "c", "scan_id": [f"sub-{s}" for s in subjects], "subject": subjects})
    phenotypes = pd.DataFrame(
        {
            "cohort": "c",
            "subject": subjects,
            "sign": np.where(signal > 0, "pos", "neg"),
            "level": signal + 0.3 * rng.normal(size=n_subjects),
            "constant": "same",
            "empty": np.nan,
            "sparse": [1.0] * 6 + [np.nan] * (n_subjects - 6),
            "rare": ["x"] * 3 + ["y"] * (n_subjects - 3),
        }
    )
    return meta, X, phenotypes


def test_run_probes_writes_summary_and_one_json_per_phenotype_with_shared_splits(tmp_path):
    meta, X, phenotypes = small_cohort()
    specs = {"sign": {"type": "binary"}, "level": {"type": "continuous", "bins": 3}}
    feature_sets = {"a": (meta, X), "copy": (meta.iloc[::-1], X[::-1])}
    summary = run_probes(feature_sets, phenotypes, specs, n_repeats=4, n_permutations=20, out_dir=tmp_path)
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["level.json", "level_binned.json", "sign.json"]
    on_disk = pd.read_csv(tmp_path / "summary.tsv", sep="\t")
    assert len(on_disk) == len(summary) == 2 * (3 + 3 + 3)
    # the same splits and the same shuffles for every feature set: a reordered copy scores identically
    first, copy = (summary[summary["feature_set"] == name].reset_index(drop=True) for name in ("a", "copy"))
    np.testing.assert_allclose(first["mean"], copy["mean"], rtol=1e-6)
    np.testing.assert_allclose(first["shuffled_mean"], copy["shuffled_mean"], rtol=1e-6)
    assert phenotype_job_names(specs) == ["sign", "level", "level_binned"]
    binned = json.loads((tmp_path / "level_binned.json").read_text())
    assert binned["type"] == "categorical" and len(binned["classes"]) == 3 and len(binned["splits"]) == 4
    assert first.set_index(["phenotype", "metric"]).loc[("sign", "auroc"), "mean"] > 0.8


def test_one_phenotype_job_gives_the_same_result_as_the_whole_run(tmp_path):
    meta, X, phenotypes = small_cohort()
    specs = expand_phenotype_specs({"sign": {"type": "binary"}, "level": {"type": "continuous"}})
    run_probes({"a": (meta, X)}, phenotypes, {"level": {"type": "continuous"}, "sign": {"type": "binary"}},
               n_repeats=3, n_permutations=5, out_dir=tmp_path / "all")
    alone = probe_phenotype({"a": (meta, X)}, phenotypes, "sign", specs["sign"], n_repeats=3, n_permutations=5,
                            out_json=tmp_path / "sign.json")
    together = json.loads((tmp_path / "all" / "sign.json").read_text())
    assert alone["splits"] == together["splits"]
    assert alone["feature_sets"] == together["feature_sets"]
    assert summarise([tmp_path / "sign.json"]).equals(summarise([tmp_path / "all" / "sign.json"]))


@pytest.mark.parametrize(
    ("column", "kind", "reason"),
    [
        ("constant", "binary", "only one class"),
        ("empty", "continuous", "no subject with scans has a value"),
        ("sparse", "continuous", "only 6 subjects"),
        ("rare", "categorical", "class x has 3 subjects"),
    ],
)
def test_unusable_phenotypes_are_skipped_with_their_reason(tmp_path, column, kind, reason):
    meta, X, phenotypes = small_cohort()
    summary = run_probes({"a": (meta, X)}, phenotypes, {column: {"type": kind}}, n_repeats=3, n_permutations=5,
                         out_dir=tmp_path)
    assert list(summary["status"]) == ["skipped"]
    assert reason in summary["reason"].iloc[0]
    record = json.loads((tmp_path / f"{column}.json").read_text())
    assert record["status"] == "skipped" and reason in record["reason"]


def test_text_in_a_continuous_phenotype_is_a_user_error(tmp_path):
    meta, X, phenotypes = small_cohort()
    phenotypes["level"] = phenotypes["level"].astype(object)
    phenotypes.loc[3, "level"] = "forty"
    with pytest.raises(SemantoksError, match="'level' is declared continuous but holds text"):
        run_probes({"a": (meta, X)}, phenotypes, {"level": {"type": "continuous"}}, n_permutations=0, out_dir=tmp_path)
    with pytest.raises(SemantoksError, match="no column 'missing'"):
        run_probes({"a": (meta, X)}, phenotypes, {"missing": {"type": "binary"}}, n_permutations=0, out_dir=tmp_path)
    with pytest.raises(SemantoksError, match="type"):
        expand_phenotype_specs({"level": {"type": "ordinal"}})


def write_run(folder, subject, session, data, names):
    """One per-run Parquet + QC JSON as docs/design.md 'Per-run outputs' describes."""
    scan_id = f"sub-{subject}_ses-{session}_task-rest"
    stem = folder / f"{scan_id}_space-MNI152NLin2009cAsym_atlas-Toy8_desc-simple"
    qc = {
        "cohort": "demo", "subject": subject, "session": session, "task": "rest", "run": None,
        "scan_id": scan_id, "space": "MNI152NLin2009cAsym", "atlas": "Toy8", "strategy": "simple", "tr": 2.0,
        "n_volumes": len(data), "n_dummy": 0, "n_frames": len(data), "mean_fd": 0.1, "max_fd": 0.3,
        "pct_censored": 0.0, "included": True, "reason": None, "parcel_coverage": [1.0] * len(names),
        "source_bold": f"/bids/{scan_id}_bold.nii.gz",
    }
    columns = {"frame": pa.array(np.arange(len(data), dtype=np.int32))}
    columns.update({name: pa.array(data[:, j].astype(np.float32)) for j, name in enumerate(names)})
    table = pa.table(columns).replace_schema_metadata({"semantoks": json.dumps(qc)})
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, f"{stem}_timeseries.parquet")
    Path(f"{stem}_qc.json").write_text(json.dumps(qc))
    return Path(f"{stem}_timeseries.parquet"), Path(f"{stem}_qc.json")


def test_probes_run_from_the_consolidated_dataset_and_feature_files(tmp_path):
    rng = np.random.default_rng(4)
    networks = ["Vis"] * 3 + ["SomMot"] * 2 + ["Default"] * 3
    labels = pd.DataFrame({"index": range(1, 9), "name": [f"p{i}" for i in range(8)], "network": networks,
                           "hemisphere": ["L", "R"] * 4})
    runs, coupling = [], {}
    for s in range(24):
        subject = f"{s:02d}"
        coupling[subject] = rng.uniform(0, 1.5)
        for session in ("1", "2"):
            shared = rng.normal(size=(60, 1))
            data = rng.normal(size=(60, 8)) + coupling[subject] * shared * (np.arange(8) < 3)
            runs.append(write_run(tmp_path / "runs", subject, session, data, labels["name"]))
    root = tmp_path / "dataset"
    build_partition(runs, root, "demo", "Toy8", labels, "MNI152NLin2009cAsym", {"name": "simple"}, "0.1.0", "abc")
    participants = tmp_path / "participants.tsv"
    pd.DataFrame({"participant_id": [f"sub-{s}" for s in coupling], "coupling": list(coupling.values())}).to_csv(
        participants, sep="\t", index=False
    )
    build_phenotype_table(participants, "participant_id", {"coupling": "continuous"}, list(coupling), "demo", root)
    paths = {}
    for kind in ("fc", "network_fc"):
        meta, X = static_feature_set(root, "Toy8", kind)
        paths[kind] = tmp_path / "features" / f"{kind}.parquet"
        write_feature_table(paths[kind], meta, X, {"atlas_id": "Toy8"})
    feature_sets = load_feature_sets(paths)
    assert feature_sets["fc"][1].shape == (48, 28) and feature_sets["network_fc"][1].shape == (48, 6)
    summary = run_probes(feature_sets, load_phenotypes(root), {"coupling": {"bins": 2}}, n_repeats=3,
                         n_permutations=10, out_dir=tmp_path / "probes")
    record = json.loads((tmp_path / "probes" / "coupling.json").read_text())
    assert record["n_scans"] == 48 and record["n_subjects"] == 24
    assert all(len(split["train"]) + len(split["test"]) == 24 for split in record["splits"])
    assert set(summary["phenotype"]) == {"coupling", "coupling_binned"}
    pearson = summary[(summary["metric"] == "pearson_r") & (summary["feature_set"] == "network_fc")]
    assert pearson["mean"].iloc[0] > 0.5


def sited_cohort(n_sites=6, per_site=12, seed=0):
    """Each site's scans share a fingerprint and each site's subjects share one label: only site leaks predict it."""
    rng = np.random.default_rng(seed)
    rows, subjects, sites, levels = [], [], [], []
    for site in range(n_sites):
        fingerprint, level = rng.normal(size=40), rng.normal()
        for k in range(per_site):
            rows.append(fingerprint + 0.1 * rng.normal(size=40))
            subjects.append(f"{site}{k:02d}")
            sites.append(f"S{site}")
            levels.append(level)
    meta = pd.DataFrame({"cohort": "c", "scan_id": [f"sub-{s}" for s in subjects], "subject": subjects})
    phenotypes = pd.DataFrame({"cohort": "c", "subject": subjects, "site": sites, "level": levels})
    return meta, np.array(rows), phenotypes


@pytest.mark.parametrize("kind", ["site_grouped", "leave_site_out"])
def test_site_splits_never_put_a_site_on_both_sides(kind):
    _, _, phenotypes = sited_cohort()
    subjects, sites = phenotypes["subject"].to_numpy(), phenotypes["site"].to_numpy()
    splits = site_splits(subjects, sites, kind, n_repeats=7, test_size=0.3, seed=1)
    site_of = dict(zip(subjects, sites))
    for train, test in splits:
        assert len(train) + len(test) == len(subjects)
        assert {site_of[s] for s in train}.isdisjoint({site_of[s] for s in test})
    assert len(splits) == (6 if kind == "leave_site_out" else 7)
    if kind == "leave_site_out":
        assert sorted({site_of[s] for _, test in splits for s in test}) == sorted(set(sites))


def test_site_grouped_inner_folds_keep_each_site_in_one_fold():
    sites = np.repeat(["a", "b", "c", "d"], 5)
    for fit, valid in subject_folds(np.zeros(20, dtype=int), n_folds=3, groups=sites):
        assert set(sites[fit]).isdisjoint(sites[valid])


def test_a_label_shared_within_sites_is_predicted_from_site_only_under_random_splits():
    meta, X, phenotypes = sited_cohort()
    spec = {"type": "continuous", "source": "level"}
    common = dict(n_repeats=5, n_permutations=0, seed=0)
    leaky = probe_phenotype({"fp": (meta, X)}, phenotypes, "level", spec, **common)
    held = probe_phenotype({"fp": (meta, X)}, phenotypes, "level", spec, split="site_grouped", site_column="site",
                           **common)
    site_of = dict(zip("c/" + phenotypes["subject"], phenotypes["site"]))
    for split in held["splits"]:
        assert {site_of[s] for s in split["train"]}.isdisjoint({site_of[s] for s in split["test"]})
    assert held["settings"]["split"] == "site_grouped"
    # random splits read the site fingerprint; held-out sites have none to read
    assert leaky["feature_sets"]["fp"]["summary"]["r2"]["mean"] > 0.9
    assert held["feature_sets"]["fp"]["summary"]["r2"]["mean"] < 0.3


def test_site_split_without_a_site_for_every_subject_is_a_user_error():
    meta, X, phenotypes = sited_cohort()
    phenotypes.loc[3, "site"] = np.nan
    with pytest.raises(SemantoksError, match="have no site; fill it in or use probe.split: random"):
        probe_phenotype({"fp": (meta, X)}, phenotypes, "level", {"type": "continuous", "source": "level"},
                        n_repeats=3, n_permutations=0, split="leave_site_out", site_column="site")


def test_hold_out_by_value_picks_whole_sites_as_text():
    _, _, phenotypes = sited_cohort()
    phenotypes["site"] = phenotypes["site"].astype("category")
    kept = held_out_by_value(phenotypes, {"column": "site", "values": ["S1", "S4"]})
    assert {s[1][0] for s in kept} == {"1", "4"} and len(kept) == 24
    assert held_out_by_value(phenotypes, None) == []


def test_a_label_carried_only_by_a_confound_is_gone_once_the_confound_is_regressed_in_the_split():
    meta, _, phenotypes = small_cohort(n_subjects=80)
    rng = np.random.default_rng(5)
    phenotypes["fd"] = rng.normal(size=80)
    phenotypes["level"] = phenotypes["fd"] + 0.2 * rng.normal(size=80)
    # features read motion (fd) and nothing else about the label
    X = np.outer(phenotypes["fd"], rng.normal(size=30)) + rng.normal(size=(80, 30))
    spec = {"type": "continuous", "source": "level"}
    common = dict(n_repeats=4, n_permutations=0, seed=0)
    raw = probe_phenotype({"x": (meta, X)}, phenotypes, "level", spec, **common)
    cleaned = probe_phenotype({"x": (meta, X)}, phenotypes, "level", spec, confounds=["fd"], **common)
    assert raw["feature_sets"]["x"]["summary"]["r2"]["mean"] > 0.7
    assert cleaned["feature_sets"]["x"]["summary"]["r2"]["mean"] < 0.1
    assert cleaned["settings"]["confounds"] == ["fd"]


def test_confound_regression_is_fitted_on_training_rows_only():
    rng = np.random.default_rng(0)
    C_train, C_test = rng.normal(size=(30, 2)), rng.normal(size=(10, 2)) + 5
    X_train, X_test = C_train @ [[1.0, 2.0], [3.0, 4.0]] + 1, rng.normal(size=(10, 2))
    cleaned_train, cleaned_test = regress_confounds(X_train, X_test, C_train, C_test)
    np.testing.assert_allclose(cleaned_train, 0, atol=1e-10)
    # the test rows get the training fit's prediction subtracted, not a fit of their own
    np.testing.assert_allclose(cleaned_test, X_test - (C_test @ [[1.0, 2.0], [3.0, 4.0]] + 1), atol=1e-10)
