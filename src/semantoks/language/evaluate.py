"""The language evaluation on the held-out subjects of the language split.

- retrieval of each held-out scan's (and network's) canonical descriptor text among the distinct held-out
  texts (pessimistic ranks, chance from the distinct texts), for the aligned heads beside a scan-blind
  constant prediction and ridge maps from the unaligned encoder, the random-init encoder and FC (the
  ceiling: descriptors are functions of FC and the series); repeated over further language splits, each
  with its own z-reference, texts, encoder IDF, heads and ridge maps, for split-to-split SDs;
- phenotype label transfer through text space (supervised: the head saw the training subjects' phenotype
  sentences) beside a logistic probe on the same subjects, each against a subject-shuffle null:
  leave-one-cohort-out with two or more cohorts, else on the held-out subjects;
- descriptor-attribute probes (each descriptor's band as a label) on embeddings, codes, aligned projections, FC;
- few-shot curves (k per class, repeated draws) for aligned vs unaligned vs codes vs network FC.
"""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from semantoks.atomic import write_json, write_table_tsv
from semantoks.features.table import read_feature_table
from semantoks.language.align import load_head
from semantoks.language.attributes import attribute_probes
from semantoks.language.descriptors import read_reference
from semantoks.language.label_transfer import (
    CONTROL_SUFFIX,
    loco_label_transfer,
    prompt_scores,
    public_scores,
    scan_labels,
)
from semantoks.language.metrics import RANK_CONVENTION, constant_prediction, few_shot, retrieval, ridge_predict
from semantoks.language.network_tokens import read_network_tokens
from semantoks.language.pairs import is_train, network_text_targets, scan_text_targets
from semantoks.language.resplits import repeated_language_splits, resplit_heads, resplit_texts
from semantoks.language.text_embed import encoder_from_record, read_text_embeddings
from semantoks.probes.labels import subject_key

log = logging.getLogger(__name__)


def _on_keys(meta, X, keys):
    """Rows of (meta, X) in the order of `keys` (cohort, scan_id); None where a key is missing."""
    position = {key: i for i, key in enumerate(zip(meta["cohort"], meta["scan_id"]))}
    if any(key not in position for key in keys):
        return None
    return X[[position[key] for key in keys]]


def evaluate_stage(descriptor_dir, text_parquet, text_json, model_features, tokens_parquet, heads_dir, out_json,
                   out_tsv, baselines=None, codes_parquet=None, vq_parquet=None, codebook_usage=None,
                   phenotypes=None, label_transfer_phenotypes=(),
                   few_shot_ks=(1, 2, 4, 8, 16), few_shot_draws=20, split_repeats=0, test_size=0.25, align_steps=300,
                   seed=0):
    """Write the evaluation JSON and a long TSV (analysis, level, method, metric, value, chance, n).

    `baselines` {name: feature parquet} add `<name>_ridge` retrieval rows (network_fc, random_init).
    `vq_parquet` (the trained tokenizer's codes) is probed beside the k-means `codes_parquet`;
    `codebook_usage` {name: usage json} is copied into the results for the report.
    `split_repeats` further language splits (seeds after `seed`, `test_size` of the subjects held out)
    repeat the retrieval with everything split-dependent refitted (heads with `align_steps` steps).
    """
    record, reference = read_reference(Path(descriptor_dir) / "reference.json")
    text_keys, text_embeddings, text_record = read_text_embeddings(text_parquet, text_json)
    heads_dir = Path(heads_dir)
    encoder_id, descriptor_id = text_record["encoder"], record["identity"]
    scan_head, _ = load_head(heads_dir / "scan_head.pt", encoder_id, descriptor_id)
    network_head, _ = load_head(heads_dir / "network_head.pt", encoder_id, descriptor_id)
    meta, X, _ = read_feature_table(model_features)
    targets = scan_text_targets(text_keys, text_embeddings)
    keep = np.array([key in targets for key in zip(meta["cohort"], meta["scan_id"])], dtype=bool)
    meta, X = meta[keep].reset_index(drop=True), X[keep]
    keys = list(zip(meta["cohort"], meta["scan_id"]))
    train = is_train(meta, record["split"]["train"])
    test = ~train
    features = {"unaligned": X}
    for name, path in (baselines or {}).items():
        found = _on_keys(*read_feature_table(path)[:2], keys)
        if found is not None:
            features[name] = found
    tokens = read_network_tokens(tokens_parquet)
    rows, results = [], {"split": {"n_train_scans": int(train.sum()), "n_test_scans": int(test.sum())},
                         "text_encoder": encoder_id, "descriptor_identity": descriptor_id,
                         "retrieval_ranks": RANK_CONVENTION}

    def add(analysis, level, method, scores):
        for metric in ("top1", "top5", "mrr"):
            rows.append({"analysis": analysis, "level": level, "method": method, "metric": metric,
                         "value": scores[metric], "chance": scores[f"chance_{metric}"], "n": scores["n"]})

    results["retrieval_scan"], results["retrieval_network"] = _split_retrieval(
        meta, X, features, tokens, targets, network_text_targets(text_keys, text_embeddings), train,
        scan_head, network_head)
    for level in ("scan", "network"):
        for method, scores in results[f"retrieval_{level}"].items():
            add("retrieval", level, method, scores)
    if split_repeats:
        results["retrieval_splits"] = _repeated_retrieval(
            Path(descriptor_dir), reference, record, text_record["encoder"]["name"], meta, X, features, tokens,
            {"scan": results["retrieval_scan"], "network": results["retrieval_network"]}, split_repeats,
            test_size, align_steps, seed)
        for level, by_method in results["retrieval_splits"]["summary"].items():
            for method, summary in by_method.items():
                for metric in ("top1", "top5", "mrr"):
                    for stat in ("mean", "sd"):
                        rows.append({"analysis": "retrieval_splits", "level": level, "method": method,
                                     "metric": f"{metric}_{stat}", "value": summary[metric][stat],
                                     "chance": summary[f"chance_{metric}"]["mean"], "n": summary["n_splits"]})
    aligned = scan_head.project(X)
    codes = _on_keys(*read_feature_table(codes_parquet)[:2], keys) if codes_parquet else None
    vq_codes = _on_keys(*read_feature_table(vq_parquet)[:2], keys) if vq_parquet else None
    # the continuous, aligned, discrete (k-means and trained) and FC views, each probed the same way
    sets = {"aligned": aligned, "unaligned": X, **({"codes": codes} if codes is not None else {}),
            **({"vq_codes": vq_codes} if vq_codes is not None else {}),
            **({"network_fc": features["network_fc"]} if "network_fc" in features else {})}
    if codebook_usage:
        results["codebooks"] = {name: json.loads(Path(path).read_text()) for name, path in codebook_usage.items()}
    descriptors_parquet = Path(descriptor_dir) / "descriptors.parquet"
    z = _on_keys(*_descriptor_table(descriptors_parquet, reference), keys) if descriptors_parquet.is_file() else None
    if z is not None:
        subjects = [subject_key(c, s) for c, s in zip(meta["cohort"], meta["subject"])]
        results["attribute_probes"] = attribute_probes(z, reference.names, train, sets, seed=seed, subjects=subjects)
        for family, by_set in results["attribute_probes"]["per_family"].items():
            for set_name, scores in by_set.items():
                rows.append({"analysis": "attribute_probes", "level": family, "method": set_name,
                             "metric": "balanced_accuracy", "value": scores["balanced_accuracy"],
                             "chance": scores["null_mean"], "n": int(test.sum())})
    if phenotypes is not None and label_transfer_phenotypes:
        labels = scan_labels(meta, phenotypes, label_transfer_phenotypes)
        results.update(_label_transfer_results(heads_dir, text_record, descriptor_id, meta, X, train, labels, seed))
        for cohort, by_name in results.get("label_transfer_loco", {}).get("per_cohort", {}).items():
            for name, scores in by_name.items():
                rows.append({"analysis": "label_transfer_loco", "level": cohort, "method": name,
                             "metric": "balanced_accuracy", "value": scores["balanced_accuracy"],
                             "chance": scores["null_mean"], "n": scores["n"]})
        for name, scores in results["label_transfer"].items():
            rows.append({"analysis": "label_transfer", "level": "scan", "method": name,
                         "metric": "balanced_accuracy", "value": scores["balanced_accuracy"],
                         "chance": scores["null_mean"], "n": scores["n"]})
        results["few_shot"] = {}
        for name, y in labels.items():
            ok = pd.notna(y)
            curves = {}
            for set_name, F in sets.items():
                curves[set_name] = few_shot(F[train & ok], y[train & ok], F[test & ok], y[test & ok],
                                            few_shot_ks, few_shot_draws, seed)
                for point in curves[set_name]:
                    rows.append({"analysis": f"few_shot_{name}", "level": "scan", "method": set_name,
                                 "metric": f"balanced_accuracy_k{point['k']}", "value": point["mean"],
                                 "chance": 1.0 / len(np.unique(y[ok])), "n": int((test & ok).sum())})
            results["few_shot"][name] = curves
    write_json(out_json, results)
    write_table_tsv(out_tsv, pd.DataFrame(rows, columns=["analysis", "level", "method", "metric", "value",
                                                         "chance", "n"]))
    return results


def _split_retrieval(meta, X, features, tokens, scan_targets, network_targets, train, scan_head, network_head):
    """({method: scores} at scan level, the same at network level) of one split: heads, constant and ridge maps."""
    test = ~train
    Y = np.stack([scan_targets[key][0] for key in zip(meta["cohort"], meta["scan_id"])])
    scan = {"aligned": retrieval(scan_head.project(X[test]), Y[test]),
            "constant": retrieval(constant_prediction(Y[train], int(test.sum())), Y[test])}
    for name, F in features.items():
        scan[f"{name}_ridge"] = retrieval(ridge_predict(F[train], Y[train], F[test]), Y[test])
    scan_train = {subject_key(c, s) for c, s in zip(meta["cohort"][train], meta["subject"][train])}
    network = _network_retrieval(tokens, network_head, network_targets, scan_train, features.get("network_fc"),
                                 list(zip(meta["cohort"], meta["scan_id"])))
    return scan, network


def _repeated_retrieval(descriptor_dir, reference, record, encoder_name, meta, X, features, tokens, first, n_repeats,
                        test_size, steps, seed):
    """Retrieval on further language splits and, per level and method, mean and SD over all splits (the first included)."""
    table = pd.read_parquet(descriptor_dir / "descriptors.parquet")
    token_meta, token_values, token_record = tokens
    per_split = [{"seed": int(seed), **first}]
    for split_seed, train_subjects in repeated_language_splits(meta, seed, n_repeats, test_size):
        text_keys, embeddings = resplit_texts(table, reference, record, encoder_name, train_subjects, split_seed)
        scan_targets, network_targets, scan_head, network_head = resplit_heads(
            meta, X, token_meta, token_values, token_record["networks"], text_keys, embeddings, train_subjects,
            steps, split_seed)
        scan, network = _split_retrieval(meta, X, features, tokens, scan_targets, network_targets,
                                         is_train(meta, train_subjects), scan_head, network_head)
        per_split.append({"seed": int(split_seed), "scan": scan, "network": network})
        log.info("language split seed %d: scan-level aligned MRR %.3f (constant %.3f)", split_seed,
                 scan["aligned"]["mrr"], scan["constant"]["mrr"])
    summary = {}
    for level in ("scan", "network"):
        for method in per_split[0][level]:
            found = [split[level][method] for split in per_split if method in split[level]]
            summary.setdefault(level, {})[method] = {
                "n_splits": len(found),
                **{key: {"mean": float(np.mean([f[key] for f in found])), "sd": float(np.std([f[key] for f in found]))}
                   for key in ("top1", "top5", "mrr", "chance_top1", "chance_top5", "chance_mrr", "n_distinct_texts")}}
    return {"seeds": [split["seed"] for split in per_split], "summary": summary, "per_split": per_split}


def _network_retrieval(tokens, network_head, targets, train_subjects, network_fc, scan_keys):
    """Per network, each held-out scan's token retrieves its sentence among that network's distinct held-out sentences."""
    token_meta, token_values, token_record = tokens
    train_all = is_train(token_meta, train_subjects)
    fc_position = {key: i for i, key in enumerate(scan_keys)}
    per_method = {}
    for n, network in enumerate(token_record["networks"]):
        rows = [i for i, key in enumerate(zip(token_meta["cohort"], token_meta["scan_id"]))
                if (*key, network) in targets]
        if not rows:
            continue
        rows = np.array(rows)
        Y = np.stack([targets[(token_meta["cohort"][i], token_meta["scan_id"][i], network)][0] for i in rows])
        train, test = train_all[rows], ~train_all[rows]
        if test.sum() < 2 or train.sum() < 2:
            continue
        F = token_values[rows, n]
        found = {"aligned": retrieval(network_head.project(F[test]), Y[test]),
                 "constant": retrieval(constant_prediction(Y[train], int(test.sum())), Y[test]),
                 "unaligned_ridge": retrieval(ridge_predict(F[train], Y[train], F[test]), Y[test])}
        keys = list(zip(token_meta["cohort"][rows], token_meta["scan_id"][rows]))
        if network_fc is not None and all(key in fc_position for key in keys):
            G = network_fc[[fc_position[key] for key in keys]]
            found["network_fc_ridge"] = retrieval(ridge_predict(G[train], Y[train], G[test]), Y[test])
        for method, scores in found.items():
            per_method.setdefault(method, []).append(scores)
    return {method: {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}
            for method, scores in per_method.items()}


def _descriptor_table(path, reference):
    """(key meta, z [n_scans, n_descriptors]) of descriptors.parquet, z from the training-subject reference."""
    table = pd.read_parquet(path)
    return table[["cohort", "scan_id"]], reference.z(table)


def _label_transfer_results(heads_dir, text_record, descriptor_id, meta, X, train, labels, seed):
    """`label_transfer` and its design; with leave-one-cohort-out heads also `label_transfer_loco` and the held-out-subject rows.

    Beside every head's row: the control head (no phenotype sentences) and a logistic probe on the same
    features fitted on the same training subjects as the head.
    """
    encoder_id = text_record["encoder"]
    encoder = encoder_from_record(text_record)

    def load(stem):
        return load_head(Path(heads_dir) / f"{stem}_head.pt", encoder_id, descriptor_id)[0]

    held_out = {}
    if (Path(heads_dir) / "label_transfer_head.pt").is_file():
        heads = {"": load("label_transfer"), CONTROL_SUFFIX: load("scan")}
        for name, y in labels.items():
            for suffix, scores in prompt_scores(heads, X, ~train, meta, name, y, encoder, seed, train).items():
                held_out[name + suffix] = public_scores(scores)
    cohorts = json.loads((Path(heads_dir) / "align.json").read_text()).get("loco", [])
    if not cohorts:
        return {"label_transfer": held_out,
                "label_transfer_design": "held-out subjects of the language split; one cohort, so "
                                         "leave-one-cohort-out does not apply"}
    loco = loco_label_transfer(load, meta, X, labels, encoder, cohorts, train, seed)
    return {"label_transfer": loco["pooled"], "label_transfer_loco": loco,
            "label_transfer_held_out_subjects": held_out,
            "label_transfer_design": f"leave-one-cohort-out over {len(cohorts)} cohorts: each cohort's scans are "
                                     "scored by heads (and a logistic probe) trained on the other cohorts' training "
                                     "subjects only; pooled over cohorts, null shuffled within cohorts"}
