"""Scores against hand-computed values: ECE (15 bins), Brier, top-k with ties, float64 log-softmax."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax as scipy_log_softmax

from cnnjax.ensemble import scores


def test_log_softmax_is_float64_and_matches_scipy():
    logits = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32) * 30
    out = scores.log_softmax(logits)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, scipy_log_softmax(logits.astype(np.float64), axis=1), rtol=0, atol=1e-12)


def test_ece_by_hand():
    # confidences 0.9 (right), 0.81 (wrong), 0.7 (right), 0.55 (right): one per bin, gaps 0.1, 0.81, 0.3, 0.45;
    # 0.62 (right) and 0.64 (wrong) share bin (0.6, 0.667]: accuracy 0.5, confidence 0.63, gap 0.13 for 2 examples
    probs = np.array([[0.9, 0.1], [0.81, 0.19], [0.3, 0.7], [0.55, 0.45], [0.62, 0.38], [0.36, 0.64]])
    labels = np.array([0, 1, 1, 0, 0, 0])
    assert scores.ece(probs, labels) == pytest.approx((0.1 + 0.81 + 0.3 + 0.45 + 2 * 0.13) / 6, abs=1e-12)
    table = scores.reliability(probs, labels)
    assert len(table) == 15 and sum(b["count"] for b in table) == 6
    shared = table[9]  # (9/15, 10/15] = (0.6, 0.667]
    assert shared["count"] == 2 and shared["accuracy"] == 0.5 and shared["confidence"] == pytest.approx(0.63)
    assert table[0]["count"] == 0 and table[0]["confidence"] is None


def test_ece_bin_edges_follow_guo_et_al():
    # (b/15, (b+1)/15]: a confidence of exactly 1 is in the last bin, 2/3 closes bin 9
    assert scores._bin_index(np.array([1.0, 10 / 15, 0.0, 1e-9]), 15).tolist() == [14, 9, 0, 0]


def test_perfectly_calibrated_and_confident_are_zero():
    probs = np.eye(3)[[0, 1, 2, 1]]
    assert scores.ece(probs, np.array([0, 1, 2, 1])) == 0.0
    assert scores.brier(probs, np.array([0, 1, 2, 1])) == 0.0


def test_brier_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    # (0.3^2 + 0.2^2 + 0.1^2) = 0.14 and (0.1^2 + 0.6^2 + 0.7^2) = 0.86
    assert scores.brier(probs, np.array([0, 2])) == pytest.approx(0.5, abs=1e-12)


def test_label_rank_equals_stable_argsort_with_ties():
    rng = np.random.default_rng(1)
    rank = rng.integers(0, 3, size=(500, 6)).astype(np.float64)  # many ties
    labels = rng.integers(0, 6, 500)
    order = np.argsort(-rank, axis=1, kind="stable")
    expected = np.argmax(order == labels[:, None], axis=1)
    np.testing.assert_array_equal(scores.label_rank(rank, labels), expected)
    # top-1 is argmax (first maximum), exactly like the predicted class
    assert scores.topk(rank, labels, 1) == np.mean(rank.argmax(1) == labels)


def test_prediction_metrics_top5_uses_all_classes_when_fewer_than_5():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    m = scores.prediction_metrics(probs, np.array([2, 0]))
    assert m["top1"] == 0.0 and m["top5"] == 1.0
    assert m["nll"] == pytest.approx(-(np.log(0.2) + np.log(0.1)) / 2)
    assert scores.prediction_metrics(probs, np.array([2, 0]), with_nll=False)["nll"] is None
