import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from semantoks.model import CodingRateLoss, coding_rate, masked_token_loss, temporal_regularizer_loss

torch.set_num_threads(1)


def unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_coding_rate_matches_its_definition():
    z = unit(50, 16)
    n, d, eps = 50, 16, 0.05
    reference = 0.5 * torch.logdet(torch.eye(d, dtype=torch.float64) + d / (n * eps**2) * (z.double().T @ z.double()))
    assert coding_rate(z, eps).item() == pytest.approx(reference.item(), rel=1e-5)


def test_collapsed_features_have_higher_loss_than_spread_ones():
    spread = unit(2, 64, 32)
    collapsed = unit(1, 1, 32).expand(2, 64, 32)
    loss = CodingRateLoss(eps=0.05, expansion_weight=1.0, expansion="student")
    spread_terms, collapsed_terms = loss(spread, spread.flip(0)), loss(collapsed, collapsed)
    assert collapsed_terms["expansion"] < spread_terms["expansion"]
    assert collapsed_terms["loss"] > spread_terms["loss"]
    # a collapsed batch is one direction: R = 1/2 log(1 + d / eps^2)
    assert collapsed_terms["expansion"].item() == pytest.approx(0.5 * math.log(1 + 32 / 0.05**2) / 32, rel=1e-3)


def test_compression_compares_across_views_only():
    student = unit(2, 8, 16)
    teacher = student.flip(0)  # teacher view b == student view a
    terms = CodingRateLoss()(student, teacher)
    assert terms["compression"].item() == pytest.approx(0.0, abs=1e-6)
    assert CodingRateLoss()(student, student)["compression"] > 0.1


def test_coding_rate_is_float32_and_finite_under_bf16_autocast():
    z = unit(64, 128)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rate = coding_rate(z.bfloat16())
    assert rate.dtype == torch.float32 and torch.isfinite(rate)
    assert rate.item() == pytest.approx(coding_rate(z).item(), rel=1e-2)


def test_expansion_gradient_spreads_features():
    z = unit(32, 8, seed=1).mul(0.1).add(unit(1, 8, seed=2)).requires_grad_(True)
    before = coding_rate(F.normalize(z, dim=-1)).item()
    coding_rate(F.normalize(z, dim=-1)).backward()
    with torch.no_grad():
        after = coding_rate(F.normalize(z + 0.05 * z.grad / z.grad.norm(), dim=-1)).item()
    assert after > before


def test_masked_token_loss_averages_over_the_gathered_tokens():
    student, teacher = unit(3, 8, seed=0), unit(3, 8, seed=1)
    expected = torch.stack([1 - (student[i] * teacher[i]).sum() for i in range(3)]).mean()
    assert masked_token_loss(student, teacher).item() == pytest.approx(expected.item(), rel=1e-6)
    empty = torch.zeros(0, 8, requires_grad=True)
    none = masked_token_loss(empty, torch.zeros(0, 8))
    assert none.item() == 0.0 and none.requires_grad


def test_temporal_regularizer_is_cross_view_and_skips_invalid_networks():
    student = unit(2, 3, 4, 8, seed=0)
    teacher = student.flip(0).clone()
    network_valid = torch.ones(2, 3, 4, dtype=torch.bool)
    assert temporal_regularizer_loss(student, teacher, network_valid).item() == pytest.approx(0.0, abs=1e-6)
    teacher[0, 1, 2] = -student[1, 1, 2]
    # one of 12 (batch x network) pairs at distance 2, in one of the two directions
    assert temporal_regularizer_loss(student, teacher, network_valid).item() == pytest.approx(2 / 12 / 2, rel=1e-5)
    network_valid[0, 1, 2] = False
    assert temporal_regularizer_loss(student, teacher, network_valid).item() == pytest.approx(0.0, abs=1e-6)


def numpy_reference_expansion(views, eps=0.05):
    """The reference's expansion by hand: mean over views of gamma/2 logdet(I + p/(m eps) Z^T Z)."""
    rates = []
    for z in views:
        m, p = z.shape
        _, logdet = np.linalg.slogdet(np.eye(p) + p / (m * eps) * z.T @ z)
        rates.append((p + m) / (p * m) * 0.5 * logdet)
    return float(np.mean(rates))


def test_reference_cls_loss_matches_a_hand_computed_value():
    student, teacher = unit(2, 6, 4, seed=3), unit(2, 6, 4, seed=4)
    s, t = student.double().numpy(), teacher.double().numpy()
    compression = np.mean([1 - (s[0] * t[1]).sum(-1).mean(), 1 - (s[1] * t[0]).sum(-1).mean()])
    expansion = numpy_reference_expansion([(s[v] + t[v]) / 2 for v in range(2)])
    terms = CodingRateLoss(eps=0.05, expansion_weight=1.0, expansion="reference")(student, teacher)
    assert terms["compression"].item() == pytest.approx(compression, rel=1e-5)
    assert terms["expansion"].item() == pytest.approx(expansion, rel=1e-5)
    assert terms["loss"].item() == pytest.approx(compression - expansion, rel=1e-5)


def test_student_cls_expansion_flag_keeps_the_first_recipe():
    student, teacher = unit(2, 6, 4, seed=3), unit(2, 6, 4, seed=4)
    s = student.double().numpy()
    by_hand = np.mean([0.5 * np.linalg.slogdet(np.eye(4) + 4 / (6 * 0.05**2) * s[v].T @ s[v])[1] / 4 for v in range(2)])
    terms = CodingRateLoss(expansion="student")(student, teacher)
    assert terms["expansion"].item() == pytest.approx(by_hand, rel=1e-5)


def test_ttr_with_expansion_matches_a_hand_computed_value_over_valid_network_tokens():
    student, teacher = unit(2, 3, 4, 5, seed=5), unit(2, 3, 4, 5, seed=6)
    network_valid = torch.ones(2, 3, 4, dtype=torch.bool)
    network_valid[1, 0, 3] = False
    s, t, valid = student.double().numpy(), teacher.double().numpy(), network_valid.numpy()
    pairs = []
    for v, w in ((0, 1), (1, 0)):
        both = valid[v] & valid[w]
        pairs.append((1 - (s[v] * t[w]).sum(-1))[both].mean())
    expansion = numpy_reference_expansion([((s[v] + t[v]) / 2)[valid[v]] for v in range(2)])
    loss = temporal_regularizer_loss(student, teacher, network_valid, expansion="reference")
    assert loss.item() == pytest.approx(np.mean(pairs) - expansion, rel=1e-5)
    compression_only = temporal_regularizer_loss(student, teacher, network_valid)
    assert compression_only.item() == pytest.approx(np.mean(pairs), rel=1e-5)
