"""Phenotype label transfer through text space, always beside a logistic probe trained on the same subjects.

This is not zero-shot: the label-transfer head is trained on the training subjects' phenotype
sentences ("Diagnosis: patient."), so it is supervised transfer of labels through the text space;
each held-out scan gets the class whose prompt is nearest its projection. A logistic probe on the
same features and the same training subjects is the reference it must be read against.
"""

import re

import numpy as np
import pandas as pd

from semantoks.errors import SemantoksError
from semantoks.language.metrics import logistic_predict, nearest_prompt, shuffle_null_score, unit_rows
from semantoks.probes.labels import subject_key

PROBE_SUFFIX = "_logistic_probe"
# classes like 1/2 or 0.0/1.0 (ABIDE's DX_GROUP, SEX) carry no meaning a prompt could match
NUMERIC_CODE = re.compile(r"^\s*-?\d+(\.\d+)?\s*$")
CONTROL_SUFFIX = "_without_phenotype_sentences"


def phenotype_sentence(name, value):
    """The text of one phenotype value, e.g. 'Diagnosis: patient.'; the class prompts use the same words."""
    return f"{name.replace('_', ' ').capitalize()}: {value}."


def class_prompts(name, classes, encoder):
    """Unit prompt vectors [n_classes, d]; one line if the classes are bare codes or two prompts embed alike."""
    if all(NUMERIC_CODE.match(str(value)) for value in classes):
        raise SemantoksError(
            f"language.label_transfer: phenotype {name!r} has bare codes as classes ({', '.join(map(str, classes))}), "
            "which a text prompt cannot mean; name the codes in the cohort's phenotypes.classes (e.g. "
            f"{name}: {{1: autism, 2: control}}) or in a participants.json Levels entry.")
    sentences = [phenotype_sentence(name, value) for value in classes]
    prompts = unit_rows(encoder.encode(sentences))
    for i in range(len(prompts)):
        for j in range(i + 1, len(prompts)):
            if np.allclose(prompts[i], prompts[j], atol=1e-6):
                raise SemantoksError(
                    f"language.label_transfer: the prompts {sentences[i]!r} and {sentences[j]!r} of phenotype "
                    f"{name!r} embed to the same vector with the {encoder.identity['name']} text encoder, so its "
                    f"classes cannot be told apart; name the codes in the cohort's phenotypes.classes (e.g. "
                    f"{name}: {{1: autism, 2: control}}) or in a participants.json Levels entry.")
    return prompts


def check_label_prompts(phenotypes, names, encoder):
    """Refuse, before any head is trained, a phenotype whose class prompts the encoder cannot tell apart."""
    for name in names:
        if name in phenotypes:
            class_prompts(name, sorted({str(v) for v in phenotypes[name].dropna()}), encoder)


def phenotype_text_vectors(phenotypes, names, encoder, subjects):
    """{cohort/subject: [n_sentences, d]} phenotype-sentence embeddings of the given subject keys only."""
    keys = set(subjects)
    found = {}
    for row in phenotypes.itertuples(index=False):
        key = subject_key(row.cohort, row.subject)
        sentences = [phenotype_sentence(name, getattr(row, name)) for name in names
                     if key in keys and isinstance(getattr(row, name), str)]
        if sentences:
            found[key] = encoder.encode(sentences)
    return found


def held_out_cohorts(cohorts):
    """The cohorts left out one at a time: all of them when there are two or more, else none."""
    found = sorted(set(cohorts))
    return found if len(found) >= 2 else []


def loco_head_names(cohort):
    """(label-transfer head, control head) file stems for held-out cohort `cohort`."""
    return f"label_transfer_loco-{cohort}", f"scan_loco-{cohort}"


def scan_labels(meta, phenotypes, names):
    """{phenotype: object array of each scan's subject value (None where missing)}."""
    table = phenotypes.set_index(["cohort", "subject"])
    index = pd.MultiIndex.from_arrays([meta["cohort"], meta["subject"]])
    return {name: table[name].reindex(index).to_numpy(dtype=object) for name in names if name in table}


def prompt_scores(heads, X, rows, meta, name, y, encoder, seed, train_rows, strata=None):
    """Scores on `rows` of each {label: head} (nearest class prompt) and of a logistic probe on `train_rows`.

    Every score sits beside its subject-shuffle null; the probe row has the label suffix PROBE_SUFFIX.
    """
    known = pd.notna(y)
    rows, train_rows = rows & known, train_rows & known
    classes = sorted({str(v) for v in y[rows]})
    if len(classes) < 2:
        return {}
    prompts = class_prompts(name, classes, encoder)
    truth = np.array([classes.index(str(v)) for v in y[rows]])
    subjects = [subject_key(c, s) for c, s in zip(meta["cohort"][rows], meta["subject"][rows])]
    choices = {label: nearest_prompt(head.project(X[rows]), prompts) for label, head in heads.items()}
    train_labels = np.array([str(v) for v in y[train_rows]])
    if len(set(train_labels)) >= 2:
        predicted = logistic_predict(X[train_rows], train_labels, X[rows])
        choices[PROBE_SUFFIX] = np.array([classes.index(v) if v in classes else -1 for v in predicted])
    found = {}
    for label, choice in choices.items():
        found[label] = {**shuffle_null_score(choice, truth, seed=seed, subjects=subjects,
                                             strata=None if strata is None else strata[rows]),
                        "classes": classes, "choice": choice, "truth": truth, "subjects": subjects}
    return found


def loco_label_transfer(load, meta, X, labels, encoder, cohorts, train, seed=0):
    """Per held-out cohort and pooled: the label-transfer head, its control and the same-subject logistic probe.

    `load(stem)` returns a head; `train` marks the language split's training scans. The probe for
    cohort B is fitted on the other cohorts' training scans, the subjects B's heads were trained on.
    The pooled null shuffles subjects' labels within each cohort.
    """
    per_cohort, pooled = {}, {}
    cohort_of = meta["cohort"].to_numpy()
    for cohort in cohorts:
        transfer_stem, control_stem = loco_head_names(cohort)
        heads = {"": load(transfer_stem), CONTROL_SUFFIX: load(control_stem)}
        for name, y in labels.items():
            found = prompt_scores(heads, X, cohort_of == cohort, meta, name, y, encoder, seed,
                                  train & (cohort_of != cohort))
            for suffix, scores in found.items():
                per_cohort.setdefault(cohort, {})[name + suffix] = public_scores(scores)
                pooled.setdefault(name + suffix, []).append((cohort, scores))
    summary = {}
    for label, parts in pooled.items():
        if len(parts) < 2 or len({tuple(s["classes"]) for _, s in parts}) != 1:
            continue
        choice = np.concatenate([s["choice"] for _, s in parts])
        truth = np.concatenate([s["truth"] for _, s in parts])
        strata = np.concatenate([[c] * len(s["truth"]) for c, s in parts])
        subjects = [key for _, s in parts for key in s["subjects"]]
        summary[label] = {**shuffle_null_score(choice, truth, seed=seed, subjects=subjects, strata=strata),
                          "cohorts": [c for c, _ in parts]}
    return {"per_cohort": per_cohort, "pooled": summary}


def public_scores(scores):
    """The scores without the per-scan arrays kept for pooling."""
    return {k: v for k, v in scores.items() if k not in ("choice", "truth", "subjects")}
