"""Label transfer by text prompts: subject- and cohort-aware shuffle nulls, leave-one-cohort-out on a planted map
beside a same-subject logistic probe, and class prompts the encoder cannot tell apart refused."""

import numpy as np
import pandas as pd
import pytest
import torch

from semantoks.errors import SemantoksError
from semantoks.language.align import fit_head
from semantoks.language.metrics import shuffle_null_score
from semantoks.language.text_encoders import HashingTextEncoder
from semantoks.language.label_transfer import (
    check_label_prompts,
    class_prompts,
    held_out_cohorts,
    loco_label_transfer,
    phenotype_sentence,
    phenotype_text_vectors,
    scan_labels,
)

torch.set_num_threads(1)


def test_shuffle_null_permutes_whole_subjects_within_strata():
    # two scans per subject, two cohorts; a perfect classifier
    subjects = np.repeat([f"s{i}" for i in range(12)], 2)
    truth = np.repeat([0, 1] * 6, 2)
    strata = np.repeat(["A"] * 6 + ["B"] * 6, 2)
    scores = shuffle_null_score(truth.copy(), truth, n_permutations=300, seed=1, subjects=subjects, strata=strata)
    assert scores["balanced_accuracy"] == 1.0 and scores["n_subjects"] == 12 and scores["n"] == 24
    assert scores["null_p95"] < 1.0 and scores["p_value"] < 0.05
    assert scores["null_mean"] == pytest.approx(0.5, abs=0.05)
    # a shuffle that moves labels only between whole subjects gives balanced accuracies in steps of 1/6
    null = [shuffle_null_score(truth.copy(), truth, 1, seed, subjects, strata)["null_mean"] for seed in range(30)]
    assert np.allclose(np.asarray(null) * 6, np.round(np.asarray(null) * 6))


def test_held_out_cohorts_need_two():
    assert held_out_cohorts(["A", "A"]) == [] and held_out_cohorts(["B", "A", "B"]) == ["A", "B"]


def test_leave_one_cohort_out_finds_a_planted_phenotype_without_the_held_out_cohort():
    rng = np.random.default_rng(0)
    cohorts = np.repeat(["A", "B"], 40)
    subjects = [f"sub-{i % 40:02d}" for i in range(80)]
    diagnosis = np.array(["patient", "control"] * 40, dtype=object)
    meta = pd.DataFrame({"cohort": cohorts, "subject": subjects, "scan_id": subjects})
    phenotypes = meta[["cohort", "subject"]].assign(diagnosis=diagnosis)
    # one feature carries the diagnosis; the descriptor-text part of the targets is noise
    X = rng.standard_normal((80, 6)).astype(np.float32)
    X[:, 0] += np.where(diagnosis == "patient", 1.5, -1.5)
    encoder = HashingTextEncoder(dim=64).fit([phenotype_sentence("diagnosis", v) for v in ("patient", "control")])
    keys = [f"{c}/{s}" for c, s in zip(cohorts, subjects)]
    sentences = phenotype_text_vectors(phenotypes, ["diagnosis"], encoder, keys)
    texts = rng.standard_normal((80, 64))
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)

    def heads_without(cohort, with_sentences):
        rows = cohorts != cohort
        targets = texts + (np.stack([sentences[k][0] for k in keys]) if with_sentences else 0)
        targets /= np.linalg.norm(targets, axis=1, keepdims=True)
        return fit_head(X[rows], targets[rows].astype(np.float32), steps=150, seed=0)[0]

    trained = {f"label_transfer_loco-{c}": heads_without(c, True) for c in "AB"}
    trained.update({f"scan_loco-{c}": heads_without(c, False) for c in "AB"})
    results = loco_label_transfer(trained.__getitem__, meta, X, scan_labels(meta, phenotypes, ["diagnosis"]), encoder,
                                  ["A", "B"], np.ones(80, dtype=bool), seed=0)
    pooled = results["pooled"]["diagnosis"]
    assert pooled["n"] == 80 and pooled["cohorts"] == ["A", "B"]
    assert pooled["balanced_accuracy"] > pooled["null_p95"] and pooled["p_value"] < 0.05
    assert results["per_cohort"]["A"]["diagnosis"]["n"] == 40
    # the control head never saw a phenotype sentence: its prompt choice carries no diagnosis
    control = results["pooled"]["diagnosis_without_phenotype_sentences"]
    assert control["balanced_accuracy"] < pooled["balanced_accuracy"]
    # the logistic probe on the same features and the same (other-cohort) subjects sits beside it, and finds it too
    probe = results["pooled"]["diagnosis_logistic_probe"]
    assert probe["n"] == 80 and probe["balanced_accuracy"] > probe["null_p95"]
    assert results["per_cohort"]["B"]["diagnosis_logistic_probe"]["n"] == 40


def test_class_codes_the_encoder_cannot_tell_apart_are_refused_with_one_line():
    encoder = HashingTextEncoder(dim=64)
    phenotypes = pd.DataFrame({"cohort": "A", "subject": ["s1", "s2"], "dx_group": ["1", "2"]})
    with pytest.raises(SemantoksError, match=r"phenotype 'dx_group' has bare codes as classes \(1, 2\).*"
                                             r"phenotypes\.classes"):
        check_label_prompts(phenotypes, ["dx_group"], encoder)
    # the hashing encoder drops one-letter words too: 'Sex: F.' and 'Sex: M.' embed to the same vector
    letters = pd.DataFrame({"cohort": "A", "subject": ["s1", "s2"], "sex": ["F", "M"]})
    with pytest.raises(SemantoksError, match=r"'Sex: F\.' and 'Sex: M\.' of phenotype 'sex' embed to "
                                             r"the same vector .* phenotypes\.classes"):
        check_label_prompts(letters, ["sex"], encoder)
    named = phenotypes.assign(dx_group=["autism", "control"])
    check_label_prompts(named, ["dx_group"], encoder)
    assert class_prompts("dx_group", ["autism", "control"], encoder).shape == (2, 64)
