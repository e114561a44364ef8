"""Alignment heads: the sigmoid loss, learning a planted map, identities stored and checked."""

import numpy as np
import pytest
import torch

from semantoks.errors import SemantoksError
from semantoks.language.align import (
    AlignmentHead,
    fit_head,
    load_head,
    save_head,
    sigmoid_loss,
    write_aligned_features,
)
from semantoks.language.metrics import retrieval

torch.set_num_threads(1)


def planted(n=120, features=16, dim=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, features)).astype(np.float32)
    Y = X @ rng.standard_normal((features, dim)) + 0.1 * rng.standard_normal((n, dim))
    return X, (Y / np.linalg.norm(Y, axis=1, keepdims=True)).astype(np.float32)


def test_sigmoid_loss_by_hand():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = sigmoid_loss(z, z, torch.tensor(0.0), torch.tensor(0.0))
    # logits: 1 on the diagonal (positives), 0 elsewhere (negatives)
    expected = -(2 * np.log(1 / (1 + np.exp(-1))) + 2 * np.log(0.5)) / 2
    assert float(loss) == pytest.approx(expected)


def test_head_learns_a_planted_map_beyond_chance_on_held_out_rows():
    X, Y = planted()
    head, losses = fit_head(X[:80], np.stack([Y[:80], Y[:80]]), steps=200, seed=0)
    scores = retrieval(head.project(X[80:]), Y[80:])
    assert losses[-1] < losses[0] and scores["top1"] > 10 * scores["chance_top1"]
    again, _ = fit_head(X[:80], Y[:80], steps=200, seed=0)
    np.testing.assert_array_equal(again.project(X[80:]), head.project(X[80:]))


def test_head_identity_mismatch_is_one_line(tmp_path):
    head = AlignmentHead(4, 3)
    identity = {"text_encoder": {"name": "hashing", "weights_hash": "a" * 64}, "descriptor_identity": "b" * 64}
    save_head(tmp_path / "head.pt", head, identity)
    loaded, found = load_head(tmp_path / "head.pt", identity["text_encoder"], identity["descriptor_identity"])
    assert found == identity
    with pytest.raises(SemantoksError, match="trained for text encoder hashing") as error:
        load_head(tmp_path / "head.pt", {"name": "wordllama", "weights_hash": "c" * 64})
    assert "\n" not in str(error.value)
    with pytest.raises(SemantoksError, match="descriptor reference bbbbbbbbbbbb"):
        load_head(tmp_path / "head.pt", descriptor_identity="d" * 64)



def test_an_encoder_identity_differing_beyond_name_and_hash_says_where(tmp_path):
    # the message printed two identical identities when only another field differed
    identity = {"text_encoder": {"name": "hashing", "weights_hash": "a" * 64, "dim": 256}, "descriptor_identity": "b"}
    save_head(tmp_path / "head.pt", AlignmentHead(4, 3), identity)
    with pytest.raises(SemantoksError, match=r"given \(they differ in dim: 256 vs 512\); rerun align"):
        load_head(tmp_path / "head.pt", {"name": "hashing", "weights_hash": "a" * 64, "dim": 512})


def test_aligned_features_are_every_scans_scan_head_projection_in_the_probes_layout(tmp_path):
    import pandas as pd

    from semantoks.features.table import read_feature_table

    X, Y = planted(n=30)
    head, _ = fit_head(X[:20], Y[:20], steps=20, seed=0)
    meta = pd.DataFrame({"cohort": "c", "scan_id": [f"sub-{i:02d}" for i in range(30)],
                         "subject": [f"{i:02d}" for i in range(30)]})
    write_aligned_features(tmp_path / "model_aligned.parquet", head, meta, X, {"head": "scan"})
    found_meta, found, _ = read_feature_table(tmp_path / "model_aligned.parquet")
    assert list(found_meta["scan_id"]) == list(meta["scan_id"]) and found.shape == (30, Y.shape[1])
    np.testing.assert_allclose(found, head.project(X), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(found, axis=1), 1.0, atol=1e-5)
