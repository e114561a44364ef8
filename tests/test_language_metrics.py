"""Retrieval that cannot flatter: pessimistic ranks among distinct texts, chance from the distinct texts, the
scan-blind constant prediction."""

import numpy as np
import pytest

from semantoks.language.metrics import constant_prediction, distinct_texts, retrieval


def three_texts_twice():
    texts = np.eye(3)
    return texts[[0, 0, 1, 1, 2, 2]]


def test_scans_sharing_a_text_share_one_candidate_and_chance_counts_distinct_texts():
    truth = three_texts_twice()
    candidates, index = distinct_texts(truth)
    assert len(candidates) == 3 and len(set(index)) == 3 and all(index[0::2] == index[1::2])
    np.testing.assert_array_equal(candidates[index], truth)
    scores = retrieval(truth, truth)
    assert scores["n"] == 6 and scores["n_distinct_texts"] == 3
    assert scores["top1"] == 1.0 and scores["chance_top1"] == pytest.approx(1 / 3)
    assert scores["chance_top5"] == 1.0 and scores["chance_mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)


def test_a_prediction_tied_with_every_text_ranks_last_not_first():
    truth = three_texts_twice()
    # equidistant from every text: ties count against the query (1 + #(sim > own) would give rank 1)
    scores = retrieval(np.ones((6, 3)), truth)
    assert scores["top1"] == 0.0 and scores["mrr"] == pytest.approx(1 / 3)
    assert retrieval(np.zeros((6, 3)), truth)["mrr"] == pytest.approx(1 / 3)


def test_constant_prediction_is_scan_blind_and_scores_the_commonest_text():
    rng = np.random.default_rng(0)
    texts = rng.standard_normal((4, 8))
    train = texts[[0] * 9 + [1, 2, 3]]
    prediction = constant_prediction(train, 5)
    assert prediction.shape == (5, 8) and np.allclose(prediction, prediction[0])
    # held-out texts mostly the commonest one: a scan-blind prediction beats the 1/m chance
    held_out = texts[[0, 0, 0, 1, 2]]
    scores = retrieval(prediction, held_out)
    assert scores["chance_top1"] == pytest.approx(1 / 3) and scores["top1"] == pytest.approx(3 / 5)
