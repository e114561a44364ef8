"""The language evaluation on the held-out subjects of the language split.

- retrieval of each held-out scan's (and network's) canonical descriptor text, scan level and network
  level, for the aligned heads beside ridge maps from the unaligned encoder, the random-init encoder and
  FC (the ceiling: descriptors are functions of FC and the series);
- zero-shot phenotype classification by text prompts against a label-shuffle null: leave-one-cohort-out
  with two or more cohorts (each cohort scored by heads trained on the other cohorts), else on the
  held-out subjects, whose phenotype sentences were never in any alignment text;
- descriptor-attribute probes (each descriptor's band as a label) on embeddings, codes, aligned projections, FC;
- few-shot curves (k per class, repeated draws) for aligned vs unaligned vs codes vs network FC.
"""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from semantoks.atomic import write_json, write_table_tsv
from semantoks.dataset.keys import subject_key
from semantoks.features.table import read_feature_table
from semantoks.language.align import load_head
from semantoks.language.attributes import attribute_probes
from semantoks.language.descriptors import read_reference
from semantoks.language.metrics import few_shot, retrieval, ridge_predict
from semantoks.language.network_tokens import read_network_tokens
from semantoks.language.pairs import is_train, network_text_targets, scan_text_targets
from semantoks.language.text_embed import encoder_from_record, read_text_embeddings
from semantoks.language.zero_shot import loco_zero_shot, prompt_scores, public_scores, scan_labels

log = logging.getLogger(__name__)


def _on_keys(meta, X, keys):
    """Rows of (meta, X) in the order of `keys` (cohort, scan_id); None where a key is missing."""
    position = {key: i for i, key in enumerate(zip(meta["cohort"], meta["scan_id"]))}
    if any(key not in position for key in keys):
        return None
    return X[[position[key] for key in keys]]


def evaluate_stage(descriptor_dir, text_parquet, text_json, model_features, tokens_parquet, heads_dir, out_json,
                   out_tsv, baselines=None, codes_parquet=None, phenotypes=None, zero_shot_phenotypes=(),
                   few_shot_ks=(1, 2, 4, 8, 16), few_shot_draws=20, seed=0):
    """Write the evaluation JSON and a long TSV (analysis, level, method, metric, value, chance, n).

    `baselines` {name: feature parquet} add `<name>_ridge` retrieval rows (network_fc, random_init).
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
    Y = np.stack([targets[key][0] for key in keys])
    train = is_train(meta, record["split"]["train"])
    test = ~train
    features = {"unaligned": X}
    for name, path in (baselines or {}).items():
        found = _on_keys(*read_feature_table(path)[:2], keys)
        if found is not None:
            features[name] = found
    rows, results = [], {"split": {"n_train_scans": int(train.sum()), "n_test_scans": int(test.sum())},
                         "text_encoder": encoder_id, "descriptor_identity": descriptor_id}

    def add(analysis, level, method, scores):
        for metric in ("top1", "top5", "mrr"):
            rows.append({"analysis": analysis, "level": level, "method": method, "metric": metric,
                         "value": scores[metric], "chance": scores[f"chance_{metric}"], "n": scores["n"]})

    scan = {"aligned": retrieval(scan_head.project(X[test]), Y[test])}
    for name, F in features.items():
        scan[f"{name}_ridge"] = retrieval(ridge_predict(F[train], Y[train], F[test]), Y[test])
    for method, scores in scan.items():
        add("retrieval", "scan", method, scores)
    results["retrieval_scan"] = scan
    results["retrieval_network"] = _network_retrieval(tokens_parquet, network_head, text_keys, text_embeddings,
                                                      record, features.get("network_fc"), keys)
    for method, scores in results["retrieval_network"].items():
        add("retrieval", "network", method, scores)
    aligned = scan_head.project(X)
    codes = _on_keys(*read_feature_table(codes_parquet)[:2], keys) if codes_parquet else None
    # the continuous, aligned, discrete and FC views, each probed the same way
    sets = {"aligned": aligned, "unaligned": X, **({"codes": codes} if codes is not None else {}),
            **({"network_fc": features["network_fc"]} if "network_fc" in features else {})}
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
    if phenotypes is not None and zero_shot_phenotypes:
        labels = scan_labels(meta, phenotypes, zero_shot_phenotypes)
        results.update(_zero_shot_results(heads_dir, text_record, descriptor_id, meta, X, test, labels, seed))
        for cohort, by_name in results.get("zero_shot_loco", {}).get("per_cohort", {}).items():
            for name, scores in by_name.items():
                rows.append({"analysis": "zero_shot_loco", "level": cohort, "method": name,
                             "metric": "balanced_accuracy", "value": scores["balanced_accuracy"],
                             "chance": scores["null_mean"], "n": scores["n"]})
        for name, scores in results["zero_shot"].items():
            rows.append({"analysis": "zero_shot", "level": "scan", "method": name, "metric": "balanced_accuracy",
                         "value": scores["balanced_accuracy"], "chance": scores["null_mean"], "n": scores["n"]})
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


def _network_retrieval(tokens_parquet, network_head, text_keys, text_embeddings, record, network_fc, scan_keys):
    """Per network, each held-out scan's token retrieves its sentence among that network's held-out sentences."""
    token_meta, tokens, token_record = read_network_tokens(tokens_parquet)
    targets = network_text_targets(text_keys, text_embeddings)
    train_all = is_train(token_meta, record["split"]["train"])
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
        F = tokens[rows, n]
        found = {"aligned": retrieval(network_head.project(F[test]), Y[test]),
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


def _zero_shot_results(heads_dir, text_record, descriptor_id, meta, X, test, labels, seed):
    """`zero_shot` and its design; with leave-one-cohort-out heads also `zero_shot_loco` and the held-out-subject rows."""
    encoder_id = text_record["encoder"]
    encoder = encoder_from_record(text_record)

    def load(stem):
        return load_head(Path(heads_dir) / f"{stem}_head.pt", encoder_id, descriptor_id)[0]

    held_out = {}
    if (Path(heads_dir) / "zero_shot_head.pt").is_file():
        # the zero-shot head (training subjects' phenotype sentences) vs the plain scan head as control
        heads = {"": load("zero_shot"), "_without_phenotype_sentences": load("scan")}
        for name, y in labels.items():
            for suffix, scores in prompt_scores(heads, X, test, meta, name, y, encoder, seed).items():
                held_out[name + suffix] = public_scores(scores)
    cohorts = json.loads((Path(heads_dir) / "align.json").read_text()).get("loco", [])
    if not cohorts:
        return {"zero_shot": held_out, "zero_shot_design": "held-out subjects of the language split; one cohort, so "
                                                           "leave-one-cohort-out does not apply"}
    loco = loco_zero_shot(load, meta, X, labels, encoder, cohorts, seed)
    return {"zero_shot": loco["pooled"], "zero_shot_loco": loco, "zero_shot_held_out_subjects": held_out,
            "zero_shot_design": f"leave-one-cohort-out over {len(cohorts)} cohorts: each cohort's scans are scored "
                                "by heads trained on the other cohorts' training subjects only; pooled over cohorts, "
                                "null shuffled within cohorts"}
