"""Label transfer leave-one-cohort-out, end to end: the real stages on two simulated cohorts (Snakemake).

`.test/config/language_two_cohorts.yaml` runs up to results/language/evaluation.json. The diagnosis is
planted in both simulated cohorts (docs/simulated_cohort.md); each cohort is classified by text prompts
through a head that never saw its scans or its phenotype sentences.
"""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_workflow import run_snakemake

from semantoks.probes.labels import subject_key

CONFIG = Path(__file__).resolve().parents[1] / ".test" / "config" / "language_two_cohorts.yaml"


@pytest.fixture(scope="module")
def two_cohorts(tmp_path_factory, repo_root, templateflow_home):
    workdir = tmp_path_factory.mktemp("language_two_cohorts")
    shutil.copy(CONFIG, workdir / "config.yaml")
    run_snakemake(workdir, repo_root, templateflow_home, "results/language/evaluation.json")
    return workdir / "results"


@pytest.mark.slow
def test_loco_label_transfer_finds_the_planted_diagnosis_above_its_shuffled_null(two_cohorts):
    results = json.loads((two_cohorts / "language" / "evaluation.json").read_text())
    assert results["label_transfer_design"].startswith("leave-one-cohort-out over 2 cohorts")
    loco = results["label_transfer_loco"]
    assert set(loco["per_cohort"]) == {"siteA", "siteB"}
    pooled = loco["pooled"]["diagnosis"]
    assert pooled["cohorts"] == ["siteA", "siteB"]
    assert pooled["n"] == sum(loco["per_cohort"][c]["diagnosis"]["n"] for c in ("siteA", "siteB"))
    assert pooled["balanced_accuracy"] > pooled["null_p95"] and pooled["p_value"] < 0.05
    # the control head (no phenotype sentences) and the same-subject logistic probe are scored beside it,
    # and the pooled rows are the report's
    assert {"diagnosis_without_phenotype_sentences", "diagnosis_logistic_probe"} <= set(loco["pooled"])
    assert results["label_transfer"] == loco["pooled"]


@pytest.mark.slow
def test_loco_heads_never_see_the_held_out_cohort(two_cohorts):
    language = two_cohorts / "language"
    train = set(json.loads((language / "descriptors" / "reference.json").read_text())["split"]["train"])
    described = pd.read_parquet(language / "descriptors" / "descriptors.parquet")
    training_scans = described[[subject_key(c, s) in train for c, s in zip(described["cohort"], described["subject"])]]
    per_cohort = training_scans.groupby("cohort").size()
    heads = json.loads((language / "heads" / "align.json").read_text())
    assert heads["loco"] == ["siteA", "siteB"]
    for held_out, other in (("siteA", "siteB"), ("siteB", "siteA")):
        for stem in (f"label_transfer_loco-{held_out}", f"scan_loco-{held_out}"):
            assert heads["heads"][stem]["n_train_pairs"] == per_cohort[other]
            identity = torch.load(language / "heads" / f"{stem}_head.pt", weights_only=True)["identity"]
            assert identity["held_out_cohort"] == held_out


@pytest.mark.slow
def test_two_cohort_evaluation_has_random_init_and_attribute_probes(two_cohorts):
    results = json.loads((two_cohorts / "language" / "evaluation.json").read_text())
    assert {"aligned", "unaligned_ridge", "network_fc_ridge", "random_init_ridge"} <= set(results["retrieval_scan"])
    probes = results["attribute_probes"]["per_family"]
    assert {"fc", "graph", "dynamics"} <= set(probes)
    # descriptors are functions of FC: network FC predicts the FC-family bands above their shuffled null
    assert probes["fc"]["network_fc"]["balanced_accuracy"] > probes["fc"]["network_fc"]["null_mean"] + 0.1
