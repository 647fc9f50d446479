"""Per-class precision/recall/F1/support against a confusion matrix worked out by hand."""

import numpy as np
import pytest

from cnnjax.evaluate.per_class import format_per_class, per_class_metrics


def test_per_class_metrics_match_a_hand_computed_confusion_matrix():
    # true \\ predicted   0  1  2  3
    #   0                 2  1  0  0     support 3
    #   1                 0  3  1  0     support 4
    #   2                 1  0  0  0     support 1 (never right)
    #   3                 0  0  0  0     support 0, never predicted
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    predictions = np.array([0, 0, 1, 1, 1, 1, 2, 0])
    m = per_class_metrics(labels, predictions, 4)
    assert m["support"] == [3, 4, 1, 0]
    assert m["precision"] == pytest.approx([2 / 3, 3 / 4, 0.0, 0.0])  # column sums 3, 4, 1, 0
    assert m["recall"] == pytest.approx([2 / 3, 3 / 4, 0.0, 0.0])
    assert m["f1"] == pytest.approx([2 / 3, 3 / 4, 0.0, 0.0])
    assert m["macro_recall"] == pytest.approx((2 / 3 + 3 / 4) / 4)
    asymmetric = per_class_metrics(np.array([0, 0, 1]), np.array([0, 1, 1]), 2)
    assert asymmetric["precision"] == pytest.approx([1.0, 0.5]) and asymmetric["recall"] == pytest.approx([0.5, 1.0])
    assert asymmetric["f1"] == pytest.approx([2 / 3, 2 / 3])
    wide_head = per_class_metrics(np.array([0, 1]), np.array([0, 7]), 2)  # class 7 of a wider head: wrong
    assert wide_head["recall"] == [1.0, 0.0] and wide_head["precision"] == [1.0, 0.0]
    table = format_per_class(asymmetric, ("T-shirt", "Trouser"))
    assert table.splitlines()[2].startswith("| T-shirt") and "50.00%" in table.splitlines()[2]
