"""Zero-shot phenotype classification by text prompts: the phenotype sentences, and leave-one-cohort-out.

With two or more cohorts, each cohort B gets its own pair of heads, trained on the other cohorts'
training subjects only: a zero-shot head (descriptor texts plus phenotype sentences) and a control
head (descriptor texts only). B's scans never enter either, and B is scored on all its scans.
"""

import numpy as np
import pandas as pd

from semantoks.dataset.keys import subject_key
from semantoks.language.metrics import nearest_prompt, shuffle_null_score


def phenotype_sentence(name, value):
    """The text of one phenotype value, e.g. 'Diagnosis: patient.'; the zero-shot prompts use the same words."""
    return f"{name.replace('_', ' ').capitalize()}: {value}."


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
    """(zero-shot head, control head) file stems for held-out cohort `cohort`."""
    return f"zero_shot_loco-{cohort}", f"scan_loco-{cohort}"


def scan_labels(meta, phenotypes, names):
    """{phenotype: object array of each scan's subject value (None where missing)}."""
    table = phenotypes.set_index(["cohort", "subject"])
    index = pd.MultiIndex.from_arrays([meta["cohort"], meta["subject"]])
    return {name: table[name].reindex(index).to_numpy(dtype=object) for name in names if name in table}


def prompt_scores(heads, X, rows, meta, name, y, encoder, seed, strata=None):
    """Zero-shot scores of each {label: head} on `rows`: nearest of the class prompts vs the subject-shuffle null."""
    rows = rows & pd.notna(y)
    classes = sorted({str(v) for v in y[rows]})
    if len(classes) < 2:
        return {}
    prompts = encoder.encode([phenotype_sentence(name, value) for value in classes])
    truth = np.array([classes.index(str(v)) for v in y[rows]])
    subjects = [subject_key(c, s) for c, s in zip(meta["cohort"][rows], meta["subject"][rows])]
    found = {}
    for label, head in heads.items():
        choice = nearest_prompt(head.project(X[rows]), prompts)
        found[label] = {**shuffle_null_score(choice, truth, seed=seed, subjects=subjects,
                                             strata=None if strata is None else strata[rows]),
                        "classes": classes, "choice": choice, "truth": truth, "subjects": subjects}
    return found


def loco_zero_shot(load, meta, X, labels, encoder, cohorts, seed=0):
    """Per held-out cohort and pooled: zero-shot head vs its control on that cohort's scans.

    `load(stem)` returns a head. The pooled null shuffles subjects' labels within each cohort.
    """
    per_cohort, pooled = {}, {}
    cohort_of = meta["cohort"].to_numpy()
    for cohort in cohorts:
        zero_stem, control_stem = loco_head_names(cohort)
        heads = {"": load(zero_stem), "_without_phenotype_sentences": load(control_stem)}
        for name, y in labels.items():
            found = prompt_scores(heads, X, cohort_of == cohort, meta, name, y, encoder, seed)
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
