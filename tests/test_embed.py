"""Frozen-encoder embeddings: shape, determinism, provenance, identity checks, test-time crops."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from test_pretrain import ATLAS, simulate_scans, tiny_config, toy_labels, write_dataset

from semantoks.embed import embed_dataset, embed_scans
from semantoks.features.table import read_feature_table
from semantoks.errors import SemantoksError
from semantoks.model.checkpoint import checkpoint_sha256
from semantoks.model.data import Preprocessing, crop, preprocess_scan, embedding_crop_starts
from semantoks.model.train import pretrain

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    scans, _ = simulate_scans(10, seed=4, n_frames=260)
    scans.append((scans[0][0][:15], 2.0))
    write_dataset(root / "data", "A", scans[:6])
    write_dataset(root / "data", "B", scans[6:])
    checkpoint = pretrain(tiny_config(steps=2, checkpoint_every=2), root / "data", ATLAS, ["A", "B"], root / "model")
    return root, checkpoint


def test_embeddings_are_one_2d_row_per_scan_and_deterministic(trained):
    root, checkpoint = trained
    first = embed_dataset(checkpoint, root / "data", ATLAS, ["A", "B"], root / "first.parquet", n_crops=4, batch_size=5)
    again = embed_dataset(checkpoint, root / "data", ATLAS, ["A", "B"], root / "again.parquet", n_crops=4, batch_size=5)
    rebatched = embed_dataset(checkpoint, root / "data", ATLAS, None, root / "other.parquet", n_crops=4, batch_size=3)
    assert len(first) == 10 and first["scan_id"].is_unique
    assert first["cohort"].tolist() == ["A"] * 6 + ["B"] * 4
    matrix = np.stack(first["embedding"])
    assert matrix.shape == (10, 64) and matrix.dtype == np.float32 and np.isfinite(matrix).all()
    np.testing.assert_array_equal(matrix, np.stack(again["embedding"]))
    np.testing.assert_allclose(matrix, np.stack(rebatched["embedding"]), atol=1e-5)
    assert np.linalg.matrix_rank(matrix) > 5

    table = pq.read_table(root / "first.parquet")
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 64)
    assert table.column_names == ["cohort", "scan_id", "subject", "session", "embedding"]
    record = json.loads(table.schema.metadata[b"semantoks"])
    assert record["checkpoint_sha256"] == checkpoint_sha256(checkpoint)
    assert record["atlas_id"] == ATLAS and record["preprocessing"]["window"] == 100 and record["n_crops"] == 4
    frame, stored_matrix, stored = read_feature_table(root / "first.parquet")
    assert stored == record and frame["scan_id"].tolist() == first["scan_id"].tolist()
    np.testing.assert_array_equal(stored_matrix, matrix)


def test_random_init_control_is_seeded(trained):
    root, _ = trained
    config = tiny_config()
    seeded = [embed_dataset(None, root / "data", ATLAS, ["B"], root / f"random{i}.parquet", config=config, seed=seed)
              for i, seed in enumerate((7, 7, 8))]
    np.testing.assert_array_equal(np.stack(seeded[0]["embedding"]), np.stack(seeded[1]["embedding"]))
    assert not np.allclose(np.stack(seeded[0]["embedding"]), np.stack(seeded[2]["embedding"]))
    record = json.loads(pq.read_schema(root / "random0.parquet").metadata[b"semantoks"])
    assert record["checkpoint_sha256"] == "random-init" and record["seed"] == 7


def test_dataset_with_other_parcel_order_is_refused(trained, tmp_path):
    root, checkpoint = trained
    scans, _ = simulate_scans(3, seed=5)
    labels = toy_labels()
    write_dataset(tmp_path, "A", scans, labels=[labels[1], labels[0], *labels[2:]])
    with pytest.raises(SemantoksError, match="parcel order/names .*position 0"):
        embed_dataset(checkpoint, tmp_path, ATLAS, ["A"], tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_test_time_crops_are_evenly_spaced_and_averaged():
    prep = Preprocessing(band_pass=None)
    assert embedding_crop_starts(300, prep, 5) == [0, 50, 100, 150, 200]
    assert embedding_crop_starts(80, prep, 5) == [0]

    class ParcelMeans:
        """A stand-in ScanEncoder: each crop's per-parcel mean over its frames."""

        data_identity = {"preprocessing": prep.identity()}
        feature_dim = 4
        device = torch.device("cpu")

        def embed(self, batch):
            return batch["x"].mean(dim=-1)

    data = np.random.default_rng(0).standard_normal((180, 4)).astype(np.float32)
    keys, features = embed_scans(ParcelMeans(), [(data, 2.0, {"scan_id": "s"}), (data[:10], 2.0, {})], n_crops=3)
    scan = preprocess_scan(data, 2.0, prep)
    expected = np.mean([crop(scan.values, start, prep)[0].mean(axis=1) for start in (0, 40, 80)], axis=0)
    assert keys["scan_id"].tolist() == ["s"] and features.shape == (1, 4)
    np.testing.assert_allclose(features[0], expected, atol=1e-6)


def test_random_init_is_pooled_exactly_as_the_model(trained, tmp_path):
    """The control's weights written as a checkpoint embed to the same features as the random_init path."""
    from semantoks.dataset import read_atlas_metadata
    from semantoks.embed import random_init_encoder
    from semantoks.model.checkpoint import load_checkpoint, save_checkpoint

    root, checkpoint = trained
    state = load_checkpoint(checkpoint)
    config = tiny_config(steps=2, checkpoint_every=2)
    encoder, identity = random_init_encoder(config, read_atlas_metadata(root / "data", ATLAS), ["B"], 7, root / "data")
    assert identity["preprocessing"] == state["data_identity"]["preprocessing"]
    state["teacher"] = encoder.state_dict()
    save_checkpoint(tmp_path / "random.pt", state)
    as_model = embed_dataset(tmp_path / "random.pt", root / "data", ATLAS, ["B"], tmp_path / "m.parquet", n_crops=4)
    control = embed_dataset(None, root / "data", ATLAS, ["B"], tmp_path / "r.parquet", n_crops=4,
                            config=config, seed=7)
    np.testing.assert_allclose(np.stack(as_model["embedding"]), np.stack(control["embedding"]), atol=1e-6)
    assert read_feature_table(tmp_path / "m.parquet")[2]["feature"] == read_feature_table(tmp_path / "r.parquet")[2][
        "feature"]
