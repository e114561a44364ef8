import json

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from semantoks.config import validate_config
from semantoks.errors import SemantoksError
from semantoks.probes import probe_phenotype, run_probes
from semantoks.probes.estimators import SplitBasis
from semantoks.probes.features import align_feature_sets
from semantoks.probes.fusion import (
    PROBE_FEATURE_SETS,
    add_fused_sets,
    feature_files,
    language_feature_sets,
    probed_feature_sets,
)
from semantoks.probes.paired import (
    PAIRED_COLUMNS,
    comparison_pairs,
    corrected_paired_t,
    holm,
    paired_comparisons,
    with_holm,
)
from semantoks.probes.summary import read_probe_records, summarise
from semantoks.seeds import pretrain_seeds, split_seed


def test_corrected_t_matches_the_hand_computed_nadeau_bengio_value():
    # d = (0.2, 0.1, 0.2, 0.1): mean 0.15, s^2 = 4 * 0.05^2 / 3 = 1/300; 1/J + n_test/n_train = 1/4 + 20/80 = 0.5
    # t = 0.15 / sqrt(0.5 / 300) = 3.6742; the uncorrected paired t would be 0.15 / sqrt(1/1200) = 5.196
    result = corrected_paired_t([0.8, 0.7, 0.9, 0.6], [0.6, 0.6, 0.7, 0.5], n_train=80, n_test=20)
    assert result["mean_diff"] == pytest.approx(0.15)
    assert result["sd_diff"] == pytest.approx(np.sqrt(1 / 300))
    assert result["t"] == pytest.approx(3.674235, rel=1e-6)
    assert result["df"] == 3 and result["n_splits"] == 4
    # two-sided Student t with 3 df at 3.6742 (tables: 0.0349)
    assert result["p_corrected"] == pytest.approx(2 * stats.t.sf(3.674235, 3), rel=1e-5)
    assert result["p_corrected"] == pytest.approx(0.0349, abs=5e-4)
    assert (result["mean_a"], result["mean_b"]) == pytest.approx((0.75, 0.6))


def test_corrected_t_is_antisymmetric_and_drops_splits_missing_a_score():
    a, b = [0.9, None, 0.7, 0.8, np.nan], [0.5, 0.6, 0.6, 0.7, 0.4]
    forward = corrected_paired_t(np.array(a, dtype=float), b, n_train=40, n_test=10)
    backward = corrected_paired_t(b, np.array(a, dtype=float), n_train=40, n_test=10)
    assert forward["n_splits"] == 3 and forward["mean_diff"] == pytest.approx(0.2)
    assert backward["t"] == pytest.approx(-forward["t"]) and backward["p_corrected"] == pytest.approx(forward["p_corrected"])


def test_identical_scores_give_no_difference_and_too_few_splits_give_no_test():
    same = corrected_paired_t([0.7, 0.6, 0.8], [0.7, 0.6, 0.8], n_train=40, n_test=10)
    assert same["t"] == 0.0 and same["p_corrected"] == 1.0
    one = corrected_paired_t([0.7], [0.6], n_train=40, n_test=10)
    assert one["mean_diff"] == pytest.approx(0.1) and one["t"] is None and one["p_corrected"] is None


def test_every_feature_set_is_compared_with_every_baseline_once():
    pairs = comparison_pairs(["model", "random_init", "fc", "network_fc", "model+network_fc"])
    assert pairs[:3] == [("model", "random_init"), ("model", "fc"), ("model", "network_fc")]
    assert ("fc", "network_fc") in pairs and ("network_fc", "fc") not in pairs
    assert ("model+network_fc", "network_fc") in pairs
    assert len(pairs) == len({frozenset(p) for p in pairs}) == 3 + 2 + 1 + 3
    assert comparison_pairs(["model", "emb"]) == []


def _record(metrics_a, metrics_b, n_train=8, n_test=2):
    splits = [{"train": [f"s{i}" for i in range(n_train)], "test": [f"t{i}" for i in range(n_test)]}] * len(metrics_a)
    return {
        "phenotype": "group",
        "status": "ok",
        "splits": splits,
        "feature_sets": {
            "model": {"metrics": {"r2": metrics_a, "mae": [1.0] * len(metrics_a)}},
            "random_init": {"metrics": {"r2": metrics_b, "mae": [1.0] * len(metrics_b)}},
        },
    }


def test_paired_rows_use_the_records_splits_for_the_correction():
    rows = paired_comparisons(_record([0.8, 0.7, 0.9, 0.6], [0.6, 0.6, 0.7, 0.5], n_train=80, n_test=20))
    assert [(r["a"], r["b"], r["metric"]) for r in rows] == [("model", "random_init", "r2"), ("model", "random_init", "mae")]
    # p_holm is added when the phenotype's records are merged (its family spans the language job's rows)
    assert set(rows[0]) | {"p_holm"} == set(PAIRED_COLUMNS)
    assert rows[0]["t"] == pytest.approx(3.674235, rel=1e-6) and rows[0]["n_test"] == 20
    assert rows[1]["p_corrected"] == 1.0
    assert paired_comparisons({**_record([0.1], [0.2]), "status": "skipped"}) == []


def test_split_basis_gives_every_block_of_a_fused_set_the_same_total_variance():
    rng = np.random.default_rng(0)
    X = np.hstack([rng.normal(0, 5, size=(30, 12)), rng.normal(3, 0.1, size=(30, 3))])
    basis = SplitBasis(X, blocks=[12, 3])
    standardised = (X - basis.mean) / basis.scale
    assert standardised[:, :12].var(axis=0).sum() == pytest.approx(1.0)
    assert standardised[:, 12:].var(axis=0).sum() == pytest.approx(1.0)


def test_fused_set_registry_names_its_files_and_matches_the_schema(repo_root):
    assert feature_files(["fc", "model+network_fc", "model", "fc+dynamics"]) == ["fc", "model", "network_fc", "dynamics"]
    assert probed_feature_sets(["model", "fc", "model+network_fc", "fc+dynamics"], pretrain_enabled=False) == ["fc", "fc+dynamics"]
    with pytest.raises(SemantoksError, match="probe.feature_sets"):
        feature_files(["model+fc"])
    schema = yaml.safe_load((repo_root / "workflow" / "schemas" / "config.schema.yaml").read_text())
    enum = schema["properties"]["probe"]["properties"]["feature_sets"]["items"]["enum"]
    assert tuple(enum) == PROBE_FEATURE_SETS


def _two_block_cohort(n_subjects=60, seed=0):
    """`model` carries the label, `network_fc` is noise; scans listed in different orders."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n_subjects)
    subjects = [f"{i:02d}" for i in range(n_subjects)]
    meta = pd.DataFrame({"cohort": "c", "scan_id": [f"sub-{s}" for s in subjects], "subject": subjects})
    model = np.outer(signal, rng.normal(size=16)) + rng.normal(size=(n_subjects, 16))
    network_fc = rng.normal(size=(n_subjects, 6))
    phenotypes = pd.DataFrame({"cohort": "c", "subject": subjects, "level": signal + 0.3 * rng.normal(size=n_subjects)})
    return {"model": (meta, model), "network_fc": (meta.iloc[::-1], network_fc[::-1])}, phenotypes


def test_fused_blocks_are_aligned_per_scan():
    feature_sets, _ = _two_block_cohort()
    aligned, _ = align_feature_sets(feature_sets)
    probed, blocks = add_fused_sets(aligned, ["model+network_fc"])
    meta, X = probed["model+network_fc"]
    assert blocks == {"model+network_fc": [16, 6]} and X.shape == (60, 22)
    np.testing.assert_array_equal(X[:, 16:], aligned["network_fc"][1])
    assert list(meta["scan_id"]) == list(aligned["network_fc"][0]["scan_id"])


def test_probe_records_paired_tests_and_the_fused_set(tmp_path):
    feature_sets, phenotypes = _two_block_cohort()
    probed = ["model", "network_fc", "model+network_fc"]
    record = probe_phenotype(feature_sets, phenotypes, "level", {"type": "continuous", "source": "level"},
                             n_repeats=6, n_permutations=5, out_json=tmp_path / "level.json", probed=probed)
    assert list(record["feature_sets"]) == probed
    rows = {(r["a"], r["b"], r["metric"]): r for r in record["paired"]}
    informative = rows[("model", "network_fc", "r2")]
    assert informative["mean_diff"] > 0.3 and informative["p_corrected"] < 0.01 and informative["n_splits"] == 6
    assert rows[("model+network_fc", "network_fc", "r2")]["p_corrected"] < 0.01
    assert json.loads((tmp_path / "level.json").read_text())["paired"] == json.loads(json.dumps(record["paired"]))


def test_run_probes_writes_the_paired_table(tmp_path):
    feature_sets, phenotypes = _two_block_cohort()
    run_probes(feature_sets, phenotypes, {"level": {"type": "continuous"}}, n_repeats=4, n_permutations=5,
               out_dir=tmp_path)
    table = pd.read_csv(tmp_path / "paired.tsv", sep="\t", na_values=["n/a"])
    assert list(table.columns) == PAIRED_COLUMNS
    assert set(zip(table["a"], table["b"])) == {("model", "network_fc")} and len(table) == 3


def test_the_documented_fused_set_config_validates_and_probes_the_fused_set(repo_root):
    text = (repo_root / "docs" / "probes.md").read_text()
    snippet = yaml.safe_load(text.split("```yaml")[1].split("```")[0])
    config = validate_config({"cohorts": {"demo": {"source": "simulated"}}, **snippet}, source="docs/probes.md")
    names = config["probe"]["feature_sets"]
    assert "model+network_fc" in probed_feature_sets(names, pretrain_enabled=True)
    assert feature_files(names) == ["model", "random_init", "fc", "network_fc", "tangent_fc", "dynamics"]


def test_language_feature_sets_are_the_aligned_projections_and_the_codes_of_k():
    assert language_feature_sets({"enabled": False, "codes_k": 32}) == []
    assert language_feature_sets({"enabled": True, "codes_k": 32, "vq_codebook_size": 16}) == [
        "model_aligned", "codes_32", "vq_16"]


def test_language_sets_probed_beside_the_main_record_share_its_splits_and_its_baselines(tmp_path):
    feature_sets, phenotypes = _two_block_cohort()
    meta, model = feature_sets["model"]
    rng = np.random.default_rng(1)
    # an informative linear image of the model features, and a noise set standing in for the codes
    language = {"model_aligned": (meta.iloc[::-1], (model @ rng.normal(size=(16, 40)))[::-1]),
                "codes_8": (meta, rng.normal(size=(60, 8)))}
    spec, settings = {"type": "continuous", "source": "level"}, dict(n_repeats=6, n_permutations=5)
    main = probe_phenotype(feature_sets, phenotypes, "level", spec, out_json=tmp_path / "level.json", **settings)
    beside = probe_phenotype(language, phenotypes, "level", spec, out_json=tmp_path / "language.json",
                             reference=main, **settings)
    assert beside["splits"] == main["splits"]
    pairs = {(r["a"], r["b"]) for r in beside["paired"]}
    assert pairs == {("model_aligned", "model"), ("model_aligned", "network_fc"), ("codes_8", "model"),
                     ("codes_8", "network_fc")}
    rows = {(r["a"], r["b"], r["metric"]): r for r in beside["paired"]}
    assert rows[("model_aligned", "network_fc", "r2")]["p_corrected"] < 0.01
    assert rows[("codes_8", "model", "r2")]["mean_diff"] < -0.3
    # the merged summary and paired tables carry both jobs' sets, the language rows once
    paths = [tmp_path / "level.json", tmp_path / "language.json"]
    assert list(read_probe_records(paths)[0]["feature_sets"]) == ["model", "network_fc", "model_aligned", "codes_8"]
    summary = summarise(paths, tmp_path / "summary.tsv", tmp_path / "paired.tsv")
    assert set(summary["feature_set"]) == {"model", "network_fc", "model_aligned", "codes_8"}
    table = pd.read_csv(tmp_path / "paired.tsv", sep="\t", na_values=["n/a"])
    assert len(table) == 3 * (1 + len(pairs))


def test_language_sets_on_other_subjects_than_the_main_record_are_one_line(tmp_path):
    feature_sets, phenotypes = _two_block_cohort()
    spec = {"type": "continuous", "source": "level"}
    main = probe_phenotype(feature_sets, phenotypes, "level", spec, n_repeats=3, n_permutations=2)
    meta, model = feature_sets["model"]
    with pytest.raises(SemantoksError, match="splits differ") as error:
        probe_phenotype({"codes_8": (meta.iloc[5:], model[5:])}, phenotypes, "level", spec, n_repeats=3,
                        n_permutations=2, reference=main)
    assert "\n" not in str(error.value)


def test_holm_matches_the_hand_computed_step_down_values():
    # m = 4 sorted p 0.01, 0.02, 0.03, 0.2: 4*0.01 = 0.04, 3*0.02 = 0.06, 2*0.03 = 0.06, 1*0.2 = 0.2
    assert holm([0.03, None, 0.2, 0.01, 0.02]) == pytest.approx([0.06, None, 0.2, 0.04, 0.06])
    # monotone: a later raw p never gets a smaller adjusted one; capped at 1
    assert holm([0.04, 0.041, 0.9]) == pytest.approx([0.12, 0.12, 0.9])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])


def test_holm_families_are_phenotype_by_metric_by_seed_level():
    rows = [{"phenotype": "age", "metric": "r2", "seed": None, "p_corrected": 0.01},
            {"phenotype": "age", "metric": "r2", "seed": None, "p_corrected": 0.04},
            {"phenotype": "age", "metric": "mae", "seed": None, "p_corrected": 0.04},
            {"phenotype": "age", "metric": "r2", "seed": 1, "p_corrected": 0.04},
            {"phenotype": "sex", "metric": "r2", "seed": None, "p_corrected": 0.04}]
    assert [r["p_holm"] for r in with_holm(rows)] == pytest.approx([0.02, 0.04, 0.04, 0.04, 0.04])
    assert "p_holm" not in rows[0]


def test_the_pretrain_seeds_start_at_the_configured_seed():
    assert pretrain_seeds({"seed": 5, "seeds": 3}) == [5, 6, 7]
    assert pretrain_seeds({"seed": 0}) == [0]
    assert split_seed("model+network_fc@12") == ("model+network_fc", 12) and split_seed("fc") == ("fc", None)


def test_sets_made_with_the_model_are_probed_once_per_seed_with_that_seeds_files():
    drawn = probed_feature_sets(["model", "fc", "model+network_fc", "random_init"], seeds=[0, 1])
    assert drawn == ["model@0", "model@1", "fc", "model+network_fc@0", "model+network_fc@1", "random_init@0",
                     "random_init@1"]
    assert feature_files(drawn) == ["model@0", "model@1", "fc", "network_fc", "random_init@0", "random_init@1"]
    assert probed_feature_sets(["model", "fc"], pretrain_enabled=False, seeds=[0, 1]) == ["fc"]


def test_per_seed_tests_pair_seeds_and_the_pooled_test_averages_the_split_differences_over_seeds():
    pairs = comparison_pairs(["model", "random_init", "fc", "model@0", "model@1", "random_init@0", "random_init@1"])
    assert ("model", "random_init") in pairs and ("model@1", "random_init@1") in pairs
    assert ("model@1", "random_init@0") not in pairs and ("model@0", "fc") in pairs


def _seeded_cohort(n_subjects=60, seeds=(0, 1, 2)):
    """Per-seed `model` sets that carry the label with seed-dependent noise; `random_init` per seed is noise."""
    feature_sets, phenotypes = _two_block_cohort(n_subjects)
    meta, model = feature_sets["model"]
    rng = np.random.default_rng(7)
    drawn = {"network_fc": feature_sets["network_fc"]}
    for seed in seeds:
        drawn[f"model@{seed}"] = (meta, model + (1 + seed) * rng.normal(size=model.shape))
        drawn[f"random_init@{seed}"] = (meta, rng.normal(size=(n_subjects, 8)))
    return drawn, phenotypes


def test_seeds_pool_per_split_with_their_range_and_keep_their_own_rows(tmp_path):
    feature_sets, phenotypes = _seeded_cohort()
    spec = {"type": "continuous", "source": "level"}
    record = probe_phenotype(feature_sets, phenotypes, "level", spec, n_repeats=5, n_permutations=5,
                             out_json=tmp_path / "level.json")
    sets = record["feature_sets"]
    assert list(sets)[:3] == ["network_fc", "model", "model@0"] and sets["model"]["seeds"] == [0, 1, 2]
    per_seed = np.array([sets[f"model@{s}"]["metrics"]["r2"] for s in (0, 1, 2)])
    np.testing.assert_allclose(sets["model"]["metrics"]["r2"], per_seed.mean(axis=0))
    means = [sets[f"model@{s}"]["summary"]["r2"]["mean"] for s in (0, 1, 2)]
    pooled = sets["model"]["summary"]["r2"]
    assert (pooled["seed_min"], pooled["seed_max"]) == (min(means), max(means)) and pooled["seed_min"] < pooled["seed_max"]
    assert pooled["mean"] == pytest.approx(np.mean(means))
    rows = {(r["a"], r["b"], r["metric"]): r for r in record["paired"]}
    diff = per_seed - np.array([sets[f"random_init@{s}"]["metrics"]["r2"] for s in (0, 1, 2)])
    test = corrected_paired_t(diff.mean(axis=0), np.zeros(5), *[rows[("model", "random_init", "r2")][k]
                                                                 for k in ("n_train", "n_test")])
    assert rows[("model", "random_init", "r2")]["t"] == pytest.approx(test["t"])
    assert rows[("model@2", "random_init@2", "r2")]["seed"] == 2 and rows[("model", "random_init", "r2")]["seed"] is None
    summary = summarise([tmp_path / "level.json"], tmp_path / "summary.tsv", tmp_path / "paired.tsv")
    model = summary[(summary["feature_set"] == "model") & (summary["metric"] == "r2")].iloc[0]
    assert model["n_seeds"] == 3 and (model["seed_min"], model["seed_max"]) == (min(means), max(means))
    assert {"model@0", "random_init@2"} <= set(summary["feature_set"])
    table = pd.read_csv(tmp_path / "paired.tsv", sep="\t", na_values=["n/a"])
    assert table["p_holm"].notna().all() and (table["p_holm"] >= table["p_corrected"]).all()


def test_one_seed_keeps_the_plain_names(tmp_path):
    feature_sets, phenotypes = _seeded_cohort(seeds=(4,))
    record = probe_phenotype(feature_sets, phenotypes, "level", {"type": "continuous", "source": "level"},
                             n_repeats=3, n_permutations=2)
    assert list(record["feature_sets"]) == ["network_fc", "model", "random_init"]
    assert record["feature_sets"]["model"]["seeds"] == [4]


def test_split_features_fit_tangent_fc_on_the_training_rows_and_fold_fused_blocks_part_by_part():
    from semantoks.features.connectivity import covariance_vector, tangent_fold
    from semantoks.probes.fusion import split_features

    rng = np.random.default_rng(0)
    rows = np.array([covariance_vector(rng.normal(size=(60, 4)) @ rng.normal(size=(4, 4))) for _ in range(10)])
    train, test, blocks = split_features("tangent_fc", rows[:7], rows[7:])
    expected = tangent_fold(rows[:7], rows[7:])
    np.testing.assert_array_equal(train, expected[0])
    np.testing.assert_array_equal(test, expected[1])
    other = rows.copy()
    other[7:] = rows[7:][::-1] * 2.0
    np.testing.assert_array_equal(split_features("tangent_fc", other[:7], other[7:])[0], train)
    static = rng.normal(size=(10, 3))
    fused = np.hstack([static, static * 2])
    train, test, blocks = split_features("fc+dynamics", fused[:7], fused[7:], [3, 3])
    np.testing.assert_array_equal(train, fused[:7])
    np.testing.assert_array_equal(test, fused[7:])
    assert blocks == [3, 3]
