"""The language chain on a tiny dataset: descriptors -> text embeddings -> heads -> codes -> evaluation."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from test_pretrain import ATLAS, simulate_scans, tiny_config, write_dataset

from semantoks.embed import embed_dataset
from semantoks.language.align import align_stage
from semantoks.language.codes import codes_stage
from semantoks.language.descriptors import describe_dataset
from semantoks.language.evaluate import evaluate_stage
from semantoks.language.network_tokens import network_token_features, read_network_tokens
from semantoks.language.text_embed import embed_texts
from semantoks.language.vq_codes import vq_codes_stage
from semantoks.model.train import pretrain
from semantoks.features.table import write_feature_table
from semantoks.probes.load import static_feature_set

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("language")
    scans, _ = simulate_scans(16, seed=5, n_frames=150)
    write_dataset(root / "data", "A", scans)
    out = root / "language"
    record = describe_dataset(root / "data", ATLAS, ["A"], out / "descriptors", test_size=0.25, seed=0)
    embed_texts(out / "descriptors", "hashing", out / "text_embeddings.parquet", out / "text_encoder.json")
    checkpoint = pretrain(tiny_config(steps=2, checkpoint_every=2), root / "data", ATLAS, ["A"], root / "model")
    embed_dataset(checkpoint, root / "data", ATLAS, ["A"], root / "model.parquet", n_crops=2)
    embed_dataset(None, root / "data", ATLAS, ["A"], root / "random_init.parquet", n_crops=2,
                  config=tiny_config(), seed=3)
    network_token_features(checkpoint, root / "data", ATLAS, ["A"], out / "network_tokens.parquet", n_crops=2)
    write_feature_table(root / "network_fc.parquet", *static_feature_set(root / "data", ATLAS, "network_fc"))
    phenotypes = pd.DataFrame({"cohort": "A", "subject": [f"A{i:03d}" for i in range(16)],
                               "diagnosis": ["patient", "control"] * 8})
    align = align_stage(out / "descriptors", out / "text_embeddings.parquet", out / "text_encoder.json",
                        root / "model.parquet", out / "network_tokens.parquet", out / "heads", phenotypes,
                        ["diagnosis"], steps=30)
    stats = codes_stage(out / "network_tokens.parquet", out / "descriptors", out / "codes", k=4)
    vq = vq_codes_stage(out / "network_tokens.parquet", out / "descriptors", out / "text_embeddings.parquet",
                        out / "text_encoder.json", out / "vq", codebook_size=4, steps=20)
    results = evaluate_stage(out / "descriptors", out / "text_embeddings.parquet", out / "text_encoder.json",
                             root / "model.parquet", out / "network_tokens.parquet", out / "heads",
                             out / "eval.json", out / "eval.tsv",
                             baselines={"network_fc": root / "network_fc.parquet",
                                        "random_init": root / "random_init.parquet"},
                             codes_parquet=out / "codes" / "codes_4.parquet", vq_parquet=out / "vq" / "vq_4.parquet",
                             codebook_usage={"codes": out / "codes" / "codes_4_usage.json",
                                             "vq_codes": out / "vq" / "vq_4_usage.json"},
                             phenotypes=phenotypes,
                             label_transfer_phenotypes=["diagnosis"], few_shot_ks=(1, 2), few_shot_draws=3,
                             split_repeats=2, test_size=0.25, align_steps=30)
    return root, out, record, align, stats, results, vq


def test_network_tokens_are_one_per_network_and_scan(chain):
    root, out, *_ = chain
    meta, tokens, record = read_network_tokens(out / "network_tokens.parquet")
    assert tokens.shape == (16, 4, 32) and record["networks"] == ["Vis", "SomMot", "DorsAttn", "Default"]


def test_heads_train_on_training_subjects_only(chain):
    _, out, record, align, *_ = chain
    n_train = len(record["split"]["train"])
    assert align["heads"]["scan"]["n_train_pairs"] == n_train == 12
    assert align["heads"]["network"]["n_train_pairs"] == 4 * n_train
    assert align["heads"]["label_transfer"]["n_train_pairs"] == n_train


def test_codes_feature_set_and_tables(chain):
    _, out, _, _, stats, _, _ = chain
    features = pd.read_parquet(out / "codes" / "codes_4.parquet")
    assert len(features) == 16 and all(np.asarray(row).sum() == 4 for row in features["embedding"])
    names = pd.read_csv(out / "codes" / "codes_4_names.tsv", sep="\t")
    assert list(names["code"]) == [0, 1, 2, 3] and 1 <= stats["train"]["perplexity"] <= 4


def test_evaluation_reports_every_method_beside_chance(chain):
    _, out, _, _, _, results, _ = chain
    assert set(results["retrieval_scan"]) == {"aligned", "constant", "unaligned_ridge", "network_fc_ridge",
                                              "random_init_ridge"}
    assert set(results["retrieval_network"]) == {"aligned", "constant", "unaligned_ridge", "network_fc_ridge"}
    # chance from the distinct held-out texts, not from the number of scans
    for scores in results["retrieval_scan"].values():
        assert scores["chance_top1"] == pytest.approx(1 / scores["n_distinct_texts"]) and scores["n"] == 4
    assert results["retrieval_ranks"].startswith("pessimistic")
    # the label-transfer head beside its control and a logistic probe trained on the same subjects
    assert set(results["label_transfer"]) == {"diagnosis", "diagnosis_without_phenotype_sentences",
                                              "diagnosis_logistic_probe"}
    assert results["label_transfer"]["diagnosis_logistic_probe"]["n"] == results["label_transfer"]["diagnosis"]["n"]
    assert "leave-one-cohort-out does not apply" in results["label_transfer_design"]
    assert set(results["few_shot"]["diagnosis"]) == {"aligned", "unaligned", "codes", "vq_codes", "network_fc"}
    table = pd.read_csv(out / "eval.tsv", sep="\t")
    assert {"retrieval", "retrieval_splits", "label_transfer", "few_shot_diagnosis",
            "attribute_probes"} <= set(table["analysis"])
    constant = table[(table["analysis"] == "retrieval") & (table["method"] == "constant")]
    assert set(constant["level"]) == {"scan", "network"} and len(constant) == 6
    assert json.loads((out / "eval.json").read_text())["split"]["n_test_scans"] == 4


def test_attribute_probes_per_family_beside_null_and_majority(chain):
    _, _, _, _, _, results, _ = chain
    probes = results["attribute_probes"]
    assert probes["bands"] == ["lower", "typical", "elevated"] and probes["n_test_scans"] == 4
    assert probes["n_descriptors"] == sum(s["unaligned"]["n_descriptors"] for s in probes["per_family"].values()) > 0
    for by_set in probes["per_family"].values():
        assert set(by_set) == {"unaligned", "aligned", "codes", "vq_codes", "network_fc"}
        for scores in by_set.values():
            assert 0 <= scores["balanced_accuracy"] <= 1 and 0 <= scores["majority"] <= 1 and scores["null_sd"] >= 0


def test_report_section_shows_retrieval_label_transfer_and_few_shot(chain):
    from semantoks.report.language import language_section

    _, out, *_ = chain
    section = language_section(out / "eval.json")
    assert "Text retrieval, scan level" in section and "Label transfer" in section and "Few-shot diagnosis" in section
    assert "ceiling" in section and language_section(None) == ""
    assert "diagnosis_logistic_probe" in section and "constant" in section and "language splits" in section


def test_report_section_says_plainly_where_retrieval_is_at_chance_and_shows_attributes(chain):
    from semantoks.report.language import language_section, retrieval_verdict

    _, out, *_ = chain
    section = language_section(out / "eval.json")
    assert "Descriptor-attribute probes" in section and "majority" in section
    assert "the aligned head retrieves held-out texts" in section
    chance = {"mrr": 0.17, "chance_mrr": 0.17, "top1": 0.05, "chance_top1": 0.05}
    ceiling = {"mrr": 0.6, "chance_mrr": 0.17, "top1": 0.4, "chance_top1": 0.05}
    assert " at chance (MRR 0.170 vs 0.170); the network-FC ridge ceiling reaches 0.600" in retrieval_verdict(
        "scan", {"aligned": chance, "network_fc_ridge": ceiling})
    assert " above chance" in retrieval_verdict("network", {"aligned": ceiling})
    constant = {"mrr": 0.5, "chance_mrr": 0.17, "top1": 0.3, "chance_top1": 0.05}
    splits = {"aligned": {"n_splits": 5, "mrr": {"mean": 0.55, "sd": 0.08}},
              "constant": {"n_splits": 5, "mrr": {"mean": 0.52, "sd": 0.07}}}
    line = retrieval_verdict("network", {"aligned": ceiling, "constant": constant}, splits)
    assert "above the scan-blind constant prediction (MRR 0.500)" in line
    assert "Over 5 splits the aligned MRR is 0.550 ± 0.080, the constant's 0.520 ± 0.070." in line


def test_report_section_lists_each_held_out_cohort(chain, tmp_path):
    from semantoks.report.language import language_section

    _, out, *_ = chain
    results = json.loads((out / "eval.json").read_text())
    scores = next(iter(results["label_transfer"].values()))
    results["label_transfer_loco"] = {"per_cohort": {"siteA": {"diagnosis": scores},
                                                     "siteB": {"diagnosis": scores}},
                                      "pooled": {"diagnosis": scores}}
    (tmp_path / "loco.json").write_text(json.dumps(results))
    section = language_section(tmp_path / "loco.json")
    assert "held-out cohort siteA: diagnosis" in section and "held-out cohort siteB: diagnosis" in section
    assert "pooled: diagnosis" in section


def test_retrieval_is_repeated_over_language_splits_with_their_sd(chain):
    _, _, record, _, _, results, _ = chain
    splits = results["retrieval_splits"]
    assert splits["seeds"] == [0, 1, 2] and len(splits["per_split"]) == 3
    # the first split is the stages' own; the others redraw the held-out subjects
    assert splits["per_split"][0]["scan"] == results["retrieval_scan"]
    summary = splits["summary"]["scan"]
    assert set(summary) == set(results["retrieval_scan"])
    for method, scores in summary.items():
        assert scores["n_splits"] == 3 and scores["mrr"]["sd"] >= 0
        values = [split["scan"][method]["mrr"] for split in splits["per_split"]]
        assert scores["mrr"]["mean"] == pytest.approx(np.mean(values)) and scores["mrr"]["sd"] == pytest.approx(
            np.std(values))
    assert summary["constant"]["mrr"]["sd"] > 0 or summary["aligned"]["mrr"]["sd"] > 0


def test_vq_tokenizer_trains_on_training_subjects_and_its_codes_are_a_feature_set(chain):
    _, out, record, _, _, results, vq = chain
    assert vq["n_train_pairs"] == 4 * len(record["split"]["train"])
    assert 1 <= vq["train"]["perplexity"] <= 4 and vq["train"]["codebook_size"] == 4
    features = pd.read_parquet(out / "vq" / "vq_4.parquet")
    assert len(features) == 16 and all(np.asarray(row).sum() == 4 for row in features["embedding"])
    identity = torch.load(out / "vq" / "vq_4_tokenizer.pt", weights_only=True)["identity"]
    assert identity["descriptor_identity"] == record["identity"]
    assert results["codebooks"]["vq_codes"]["train"] == vq["train"]


def test_report_section_shows_both_codebooks_usage(chain):
    from semantoks.report.language import language_section

    _, out, *_ = chain
    section = language_section(out / "eval.json")
    assert "Network-token codebooks" in section and "vq_codes" in section and "dead codes" in section
