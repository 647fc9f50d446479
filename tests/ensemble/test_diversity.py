"""Diversity measures against hand counts and explicit loops; the size curve's order comes from the fit split."""

from __future__ import annotations

import numpy as np
import pytest

from cnnjax.ensemble.diversity import diversity, size_curve, yules_q


def test_yules_q_by_hand():
    # N11 = 3, N00 = 2, N10 = 1, N01 = 1: Q = (3*2 - 1*1) / (3*2 + 1*1) = 5/7
    a = np.array([1, 1, 1, 0, 0, 1, 0], bool)
    b = np.array([1, 1, 1, 0, 0, 0, 1], bool)
    assert yules_q(a, b) == pytest.approx(5 / 7)
    assert yules_q(a, ~a) == -1.0
    assert np.isnan(yules_q(np.ones(5, bool), np.ones(5, bool)))  # N00 = N01 = N10 = 0: undefined


def test_diversity_matrices_match_loops():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 100)
    predictions = np.where(rng.random((4, 100)) < 0.6, labels, rng.integers(0, 3, (4, 100)))
    result = diversity(predictions, labels)
    for i in range(4):
        for j in range(4):
            disagree = sum(predictions[i, n] != predictions[j, n] for n in range(100)) / 100
            both_wrong = sum(predictions[i, n] != labels[n] and predictions[j, n] != labels[n] for n in range(100))
            assert result["disagreement"][i][j] == pytest.approx(disagree)
            assert result["double_fault"][i][j] == pytest.approx(both_wrong / 100)
    oracle = np.mean([any(predictions[m, n] == labels[n] for m in range(4)) for n in range(100)])
    assert result["oracle_top1"] == pytest.approx(oracle)
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    assert result["mean_disagreement"] == pytest.approx(np.mean([result["disagreement"][i][j] for i, j in pairs]))


def test_undefined_yules_q_is_none_and_left_out_of_the_mean():
    labels = np.zeros(6, np.int64)
    predictions = np.array([[0] * 6, [0, 0, 1, 1, 0, 1], [1, 0, 0, 1, 0, 0]])  # member 0 is always right
    result = diversity(predictions, labels)
    assert result["yules_q"][0][1] is None and result["yules_q"][1][0] is None
    assert result["mean_yules_q"] == pytest.approx(yules_q(predictions[1] == 0, predictions[2] == 0))


def test_size_curve_follows_the_given_order():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 50)
    probs = rng.dirichlet(np.ones(3), size=(3, 50))
    curve = size_curve(probs, labels, [2, 0, 1], ["a", "b", "c"])
    assert [row["members"] for row in curve] == [["c"], ["c", "a"], ["c", "a", "b"]]
    assert curve[0]["top1"] == np.mean(probs[2].argmax(1) == labels)
    assert curve[1]["nll"] == pytest.approx(-np.log(((probs[2] + probs[0]) / 2)[np.arange(50), labels]).mean())
