"""Descriptor tables, z-reference (no leakage), texts, determinism, skipped scans and omitted networks."""

import json

import numpy as np
import pandas as pd
import pytest
from test_pretrain import ATLAS, simulate_scans, write_dataset

from semantoks.errors import SemantoksError
from semantoks.language.descriptor_texts import band, graph_text, human_name, seeded_variant
from semantoks.language.descriptors import describe_dataset, read_reference

TRAIN = [f"A/A{i:03d}" for i in range(6)]


def toy_scans(seed=0):
    scans, _ = simulate_scans(9, seed=seed, n_frames=120)
    scans.append((scans[0][0][:30], 2.0))  # 60 s: too short for the spectral measures
    nan_network = scans[1][0].copy()
    nan_network[:, 18:] = np.nan  # the whole Default network outside the mask
    scans[1] = (nan_network, 2.0)
    return scans


@pytest.fixture(scope="module")
def described(tmp_path_factory):
    root = tmp_path_factory.mktemp("descriptors")
    write_dataset(root / "data", "A", toy_scans())
    record = describe_dataset(root / "data", ATLAS, ["A"], root / "out", seed=1, train_subjects=TRAIN)
    return root, record


def test_bands_follow_the_spec():
    assert [band(z) for z in (-2.5, -1.5, -1.0, 0.0, 1.0, 1.5, 2.5)] == [
        "markedly lower", "somewhat reduced", "typical", "typical", "typical", "somewhat elevated", "markedly elevated"]


def test_human_names_and_modularity_wording():
    assert human_name("SalVentAttn") == "Ventral attention / Salience" and human_name("DefaultB") == "Default mode B"
    assert "modularity somewhat elevated (z=+1.5) (more segregated)" in graph_text(0.0, 1.5, 0.0)
    assert "(more integrated)" in graph_text(0.0, -1.5, 0.0)


def test_outputs_texts_and_reference(described):
    root, record = described
    table = pd.read_parquet(root / "out" / "descriptors.parquet")
    texts = pd.read_parquet(root / "out" / "texts.parquet")
    assert len(table) == 9 and record["reference"]["subjects"] == TRAIN
    # the reference's z-scores of its own training scans are centred
    z = table[table["subject"].isin([s.split("/")[1] for s in TRAIN])].filter(like="z:fc.")
    np.testing.assert_allclose(z.mean().to_numpy(), 0, atol=1e-9)
    canonical = texts[texts["variant"] == 0]
    per_scan = canonical.groupby("scan_id")["unit"].apply(set)
    assert per_scan.iloc[2] == {"fc", "gradient", "graph", "dynamics", "Vis", "SomMot", "DorsAttn", "Default"}
    assert canonical["text"].str.startswith("Default mode:").any()
    # one augmentation wording per text, never the canonical one
    augmented = texts[texts["augment"]]
    assert len(augmented) == len(canonical) and (augmented["variant"] > 0).all()
    assert seeded_variant(1, "sub-A000_task-rest", "fc") == seeded_variant(1, "sub-A000_task-rest", "fc")


def test_too_short_scan_is_skipped_and_nan_network_omitted(described):
    root, record = described
    skipped = pd.read_csv(root / "out" / "skipped.tsv", sep="\t")
    assert skipped["scan_id"].tolist() == ["sub-A009_task-rest"] and "shorter than" in skipped["reason"][0]
    assert [(o["scan_id"], o["network"]) for o in record["omitted_networks"]] == [("sub-A001_task-rest", "Default")]
    texts = pd.read_parquet(root / "out" / "texts.parquet")
    assert "Default" not in set(texts[texts["scan_id"] == "sub-A001_task-rest"]["unit"])


def test_test_subjects_never_change_the_reference(described, tmp_path):
    root, record = described
    changed = toy_scans()
    for i in range(6, 9):
        changed[i] = (changed[i][0] * 3.0 + np.random.default_rng(i).standard_normal(changed[i][0].shape), 2.0)
    write_dataset(tmp_path / "data", "A", changed)
    again = describe_dataset(tmp_path / "data", ATLAS, ["A"], tmp_path / "out", seed=1, train_subjects=TRAIN)
    assert again["reference"] == record["reference"] and again["identity"] == record["identity"]
    before = pd.read_parquet(root / "out" / "descriptors.parquet")
    after = pd.read_parquet(tmp_path / "out" / "descriptors.parquet")
    assert not np.allclose(before.iloc[6:, 4:].to_numpy(float), after.iloc[6:, 4:].to_numpy(float), equal_nan=True)


def test_descriptors_are_deterministic(described, tmp_path):
    root, record = described
    describe_dataset(root / "data", ATLAS, ["A"], tmp_path / "out", seed=1, train_subjects=TRAIN)
    for name in ("descriptors.parquet", "texts.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(root / "out" / name), pd.read_parquet(tmp_path / "out" / name))
    assert read_reference(tmp_path / "out" / "reference.json")[0] == json.loads((root / "out" / "reference.json").read_text())
    describe_dataset(root / "data", ATLAS, ["A"], tmp_path / "pool", seed=1, train_subjects=TRAIN, processes=2)
    pd.testing.assert_frame_equal(pd.read_parquet(root / "out" / "texts.parquet"),
                                  pd.read_parquet(tmp_path / "pool" / "texts.parquet"))


def test_too_few_training_subjects_is_one_line(tmp_path):
    write_dataset(tmp_path / "data", "A", toy_scans()[:4])
    with pytest.raises(SemantoksError, match=r"needs at least 3; add subjects") as error:
        describe_dataset(tmp_path / "data", ATLAS, ["A"], tmp_path / "out", train_subjects=["A/A000", "A/A001"])
    assert "\n" not in str(error.value) and not (tmp_path / "out").exists()


def test_gradient_descriptors_are_defined_on_modular_scans(described):
    # the toy networks barely couple, the case that left the top-decile affinity disconnected (NaN gradients)
    root, _ = described
    table = pd.read_parquet(root / "out" / "descriptors.parquet")
    ranges = table.filter(regex=r"^gradient\.range\.")
    assert ranges.shape[1] == 3 and np.isfinite(ranges.to_numpy()).all()


def _blas_threads():
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_pool_workers_run_one_blas_thread_each():
    # two workers with a BLAS pool each of the machine's size oversubscribed 2 cores (4x slower measured)
    from semantoks.language.descriptors import measure_pool

    with measure_pool(2) as pool:
        threads = pool.submit(_blas_threads).result()
    assert threads and set(threads) == {1}
