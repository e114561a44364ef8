"""Online evaluation during pretraining: held-out subjects, their two crops, re-identification by kNN."""

import numpy as np
import torch

from semantoks.errors import SemantoksError
from semantoks.model.data import crop, is_usable, preprocess_scan, scan_records


def usable_subjects(root, atlas_id, cohorts, prep):
    """Sorted (cohort, subject) pairs with at least one scan of one full patch or more."""
    from semantoks.dataset import scan_index

    index = scan_index(root, atlas_id, cohorts)
    usable = [is_usable(n, tr, prep) for n, tr in zip(index["n_frames"], index["tr"])]
    return sorted(set(zip(index["cohort"][usable], index["subject"][usable])))


def held_out_subjects(root, atlas_id, cohorts, n_subjects, seed, prep):
    """A seeded, sorted list of `n_subjects` (cohort, subject) pairs with a usable scan; [] for 0."""
    if not n_subjects:
        return []
    subjects = usable_subjects(root, atlas_id, cohorts, prep)
    if n_subjects < 2 or n_subjects >= len(subjects):
        raise SemantoksError(f"config.yaml: pretrain eval_subjects {n_subjects} must be at least 2 and fewer than "
                             f"the {len(subjects)} pretraining subjects; lower it or set it to 0.")
    chosen = np.random.default_rng([int(seed), 7]).choice(len(subjects), n_subjects, replace=False)
    return sorted(subjects[i] for i in chosen)


def evaluation_crops(root, atlas_id, subjects, prep):
    """Two crops per subject, {x [2S,P,T], parcel_valid [2S,P], patch_valid [2S,K]}: rows 0..S-1 are
    each subject's first scan from its start, rows S..2S-1 its last scan's final window."""
    from semantoks.dataset import read_scans, scan_index

    cohorts = sorted({cohort for cohort, _ in subjects})
    index = scan_index(root, atlas_id, cohorts)
    first, last = [], []
    for cohort, subject in subjects:
        rows = index[(index["cohort"] == cohort) & (index["subject"] == subject)]
        usable = [row for row in rows.itertuples() if is_usable(row.n_frames, row.tr, prep)]
        if not usable:
            raise SemantoksError(f"{root}: held-out subject {subject} of cohort {cohort} has no usable scan; "
                                 "rebuild the dataset or set pretrain eval_subjects 0.")
        first.append((cohort, usable[0].scan_id))
        last.append((cohort, usable[-1].scan_id))
    scans = {}
    for data, tr, meta in scan_records(read_scans(root, atlas_id, sorted(set(first + last)))):
        scans[(meta["cohort"], meta["scan_id"])] = preprocess_scan(data, tr, prep, meta)
    pieces = [crop(scans[key].values, 0, prep) for key in first]
    pieces += [crop(scans[key].values, max(0, scans[key].n_frames - prep.window), prep) for key in last]
    parcel_valid = [scans[key].parcel_valid for key in first + last]
    return {"x": torch.from_numpy(np.stack([x for x, _ in pieces])),
            "parcel_valid": torch.from_numpy(np.stack(parcel_valid)),
            "patch_valid": torch.from_numpy(np.stack([valid for _, valid in pieces]))}


def reidentification_top1(features):
    """Top-1 accuracy of finding each subject's second crop among all second crops, by cosine (rows as above)."""
    n = features.shape[0] // 2
    units = torch.nn.functional.normalize(features.float(), dim=-1)
    similarity = units[:n] @ units[n:].T
    return float((similarity.argmax(dim=1) == torch.arange(n, device=features.device)).float().mean())


def phenotype_scores(features, subjects, phenotypes, names, ridge_alpha=1.0, k=5):
    """Leave-one-subject-out scores of `names` from frozen features of the held-out subjects.

    features [2S, F] as evaluation_crops orders them (a subject's two crops are averaged);
    phenotypes: the dataset's typed phenotype table. Continuous: closed-form ridge, column
    eval_<name>_ridge_r (Pearson r of held-out predictions); binary/categorical: cosine kNN,
    eval_<name>_knn_acc beside eval_<name>_chance (the majority class's share).
    """
    n = len(subjects)
    units = torch.nn.functional.normalize(features.double().cpu(), dim=-1)
    per_subject = torch.nn.functional.normalize(units[:n] + units[n:], dim=-1).numpy()
    table = phenotypes.set_index(["cohort", "subject"])
    types = phenotypes.attrs["phenotype_types"]
    scores = {}
    for name in names:
        values = table[name].reindex(list(subjects))
        keep = values.notna().to_numpy()
        if keep.sum() < 4:
            continue
        x, y = per_subject[keep], values[keep]
        if types[name] == "continuous":
            scores[f"eval_{name}_ridge_r"] = _loo_ridge_r(x, y.to_numpy(dtype=float), ridge_alpha)
        else:
            labels = y.astype(str).to_numpy()
            scores[f"eval_{name}_knn_acc"] = _loo_knn_accuracy(x, labels, k)
            scores[f"eval_{name}_chance"] = float(np.unique(labels, return_counts=True)[1].max() / len(labels))
    return scores


def _loo_ridge_r(x, y, alpha):
    """Exact leave-one-out predictions of ridge with an unpenalised intercept, via the hat matrix."""
    n = len(y)
    centred = x - x.mean(axis=0)
    hat = centred @ np.linalg.solve(centred.T @ centred + alpha * np.eye(x.shape[1]), centred.T) + 1.0 / n
    fitted = hat @ y
    loo = y - (y - fitted) / (1.0 - np.diag(hat))
    if np.std(loo) == 0 or np.std(y) == 0:
        return 0.0
    return float(np.corrcoef(loo, y)[0, 1])


def _loo_knn_accuracy(x, labels, k):
    similarity = x @ x.T
    np.fill_diagonal(similarity, -np.inf)
    neighbours = np.argsort(-similarity, axis=1)[:, :min(k, len(labels) - 1)]
    correct = 0
    for i, rows in enumerate(neighbours):
        classes, counts = np.unique(labels[rows], return_counts=True)
        correct += classes[counts.argmax()] == labels[i]
    return correct / len(labels)


def check_phenotypes(phenotypes, names, source):
    """Refuse names the dataset's phenotype table does not hold, before training starts."""
    missing = [name for name in names if name not in phenotypes.attrs["phenotype_types"]]
    if missing:
        raise SemantoksError(f"{source}: pretrain eval_phenotypes {', '.join(missing)} are not in the phenotype table "
                             f"(it holds {', '.join(phenotypes.attrs['phenotype_types']) or 'none'}); fix the names.")
