"""Training-health metrics and verdict: hand-computed values, an untrained, a collapsed and a trained model."""

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from test_pretrain import ATLAS, simulate_scans, write_dataset

from semantoks.model.checkpoint import build_encoder_from, load_checkpoint, load_encoder
from semantoks.model.health import (
    COLLAPSED, HEALTH_KEYS, INDISTINGUISHABLE, LEARNING, linear_cka, mean_dimension_r, mean_pairwise_cosine,
    measure_health, rankme, verdict,
)
from semantoks.model.presets import build_encoder
from semantoks.model.train import pretrain

torch.set_num_threads(1)

PARCEL_NETWORK = np.repeat(np.arange(4), 6)


def health_batch(n=32, seed=5):
    generator = torch.Generator().manual_seed(seed)
    parcel_valid = torch.ones(n, len(PARCEL_NETWORK), dtype=torch.bool)
    parcel_valid[::5, 3] = False
    patch_valid = torch.ones(n, 5, dtype=torch.bool)
    patch_valid[::4, -1] = False
    return {"x": torch.randn(n, len(PARCEL_NETWORK), 100, generator=generator), "parcel_valid": parcel_valid,
            "patch_valid": patch_valid}


def small_encoder(seed=0):
    torch.manual_seed(seed)
    return build_encoder({"dim": 32, "depth": 2, "heads": 2}, PARCEL_NETWORK, 4)


def test_linear_cka_matches_hand_computed_values():
    x = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    y = torch.tensor([[1.0], [3.0], [2.0], [4.0]])
    # one feature each: CKA is the squared Pearson r; centred x = y = (-1.5, .5/-.5, ..., 1.5), r = 4/5
    assert linear_cka(x, y) == pytest.approx(0.64)
    z = torch.randn(20, 5, generator=torch.Generator().manual_seed(0))
    rotation, _ = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(1)))
    assert linear_cka(z, 3.0 * z @ rotation + 7.0) == pytest.approx(1.0)
    assert linear_cka(z, torch.ones(20, 5)) == 0.0
    assert mean_dimension_r(torch.cat([x, x], 1), torch.cat([y, -x], 1)) == pytest.approx((0.8 - 1.0) / 2)


def test_rankme_and_pairwise_cosine_match_hand_computed_values():
    # singular values 3 and 1: p = (3/4, 1/4), RankMe = exp(-(3/4 ln 3/4 + 1/4 ln 1/4))
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert rankme(torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]])) == pytest.approx(expected, rel=1e-5)
    assert rankme(torch.eye(6)) == pytest.approx(6.0, rel=1e-5)
    assert rankme(torch.ones(10, 4)) == pytest.approx(1.0, rel=1e-4)
    # pairs: (1,0)-(0,1) 0, (1,0)-(1,1) and (0,1)-(1,1) 1/sqrt(2)
    vectors = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    assert mean_pairwise_cosine(vectors) == pytest.approx(math.sqrt(2) / 3)


def test_untrained_model_is_indistinguishable_from_its_init():
    encoder = small_encoder()
    encoder.train()
    metrics = measure_health(encoder, copy.deepcopy(encoder), health_batch())
    assert set(HEALTH_KEYS) <= set(metrics)
    assert metrics["drift_r"] == pytest.approx(1.0) and metrics["cka_init"] == pytest.approx(1.0)
    assert verdict(metrics)[0] == INDISTINGUISHABLE
    assert encoder.training, "measure_health must give the encoder back in the mode it was in"


def test_collapsed_model_is_called_collapsed():
    initial = small_encoder()
    collapsed = copy.deepcopy(initial)
    with torch.no_grad():
        # the final LayerNorm maps everything to its bias: every CLS and token output is the same vector
        collapsed.norm.weight.zero_()
        collapsed.norm.bias.copy_(torch.linspace(-1.0, 1.0, 32))
    metrics = measure_health(collapsed, initial, health_batch())
    assert metrics["rankme"] < 1.01 and metrics["cls_cosine"] == pytest.approx(1.0)
    assert metrics["token_cosine"] == pytest.approx(1.0)
    label, reason = verdict(metrics)
    assert label == COLLAPSED and "RankMe" in reason


def test_verdict_thresholds_in_order():
    healthy = {"cka_init": 0.5, "rankme": 10.0, "cls_cosine": 0.5, "token_cosine": 0.3, "drift_r": 0.4}
    assert verdict(healthy)[0] == LEARNING
    assert verdict({**healthy, "cka_init": 0.96})[0] == INDISTINGUISHABLE
    assert verdict({**healthy, "rankme": 1.5})[0] == COLLAPSED
    assert verdict({**healthy, "token_cosine": 0.995})[0] == COLLAPSED
    # still at its init: "indistinguishable", even where the random init's CLS is nearly constant
    assert verdict({**healthy, "cka_init": 0.99, "cls_cosine": 0.9996})[0] == INDISTINGUISHABLE


def test_briefly_trained_model_is_learning(tmp_path):
    scans, _ = simulate_scans(16, seed=0)
    write_dataset(tmp_path / "data", "pretrain", scans, rows_per_group=16)
    # momentum 0: the teacher is the student, so 30 steps at a high learning rate move it. This shortcut needs
    # the first recipe's student-only expansion: the reference's (on the student-teacher mean, scaled for large
    # batches) leaves the CLS near-constant (cosine 0.99-1.0) after 30 steps of 8 scans (docs/model.md)
    config = {"preset": "tiny", "model": {"dim": 32, "depth": 2, "heads": 2},
              "loss": {"head_hidden": 64, "out_dim": 16, "expansion": "student"}, "steps": 30, "batch_size": 8, "base_lr": 0.5, "warmup_fraction": 0.0, "momentum": 0.0,
              "momentum_end": 0.0, "checkpoint_every": 30, "log_every": 1, "seed": 0}
    checkpoint = pretrain(config, tmp_path / "data", ATLAS, ["pretrain"], tmp_path / "model")
    log = pd.read_csv(tmp_path / "model" / "log.csv")
    assert log["loss_total"].iloc[-5:].mean() < log["loss_total"].iloc[:5].mean() - 0.05
    teacher, identity = load_encoder(checkpoint)
    torch.manual_seed(load_checkpoint(checkpoint)["config"]["seed"])
    initial = build_encoder_from(load_checkpoint(checkpoint)["config"], identity)
    metrics = measure_health(teacher, initial, health_batch())
    assert metrics["cka_init"] < 0.9
    assert verdict(metrics)[0] == LEARNING
    assert measure_health(initial, initial, health_batch())["cka_init"] == pytest.approx(1.0)
