"""How different are the members? Pairwise disagreement, Yule's Q, double fault, oracle accuracy, size curve.

Measures follow Kuncheva & Whitaker (2003), "Measures of diversity in classifier ensembles", on the members'
top-1 outputs on the report split. Only ensembles of diverse members can beat their best member.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cnnjax.ensemble.scores import nll


def _matrix(values: np.ndarray) -> list[list[float | None]]:
    return [[None if np.isnan(v) else float(v) for v in row] for row in values]


def _off_diagonal_mean(values: np.ndarray) -> float | None:
    upper = values[np.triu_indices(len(values), 1)]
    upper = upper[~np.isnan(upper)]
    return float(upper.mean()) if upper.size else None


def yules_q(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Q = (N11 N00 - N01 N10) / (N11 N00 + N01 N10) on correct(1)/wrong(0) outputs; in [-1, 1], 0 = independent.

    Undefined when the denominator is 0 (e.g. a member that is always right, or never wrong together
    with the other): returned as NaN here and reported as None (JSON null), not silently as 0.
    """
    n11 = float(np.sum(correct_a & correct_b))
    n00 = float(np.sum(~correct_a & ~correct_b))
    n10 = float(np.sum(correct_a & ~correct_b))
    n01 = float(np.sum(~correct_a & correct_b))
    denominator = n11 * n00 + n01 * n10
    return (n11 * n00 - n01 * n10) / denominator if denominator else float("nan")


def diversity(predictions: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Pairwise M x M matrices from the members' argmaxes (M, N): disagreement, Yule's Q, double fault.

    disagreement = fraction of examples where the two argmaxes differ (right or wrong), double fault =
    fraction both get wrong; oracle_top1 = fraction some member gets right (an upper bound for any vote).
    The mean_* values average the pairs i < j (Yule's Q over the pairs where it is defined).
    """
    correct = predictions == np.asarray(labels)[None, :]
    m = len(predictions)
    disagree = np.array([(predictions[i] != predictions).mean(1) for i in range(m)])
    double_fault = np.array([(~correct[i] & ~correct).mean(1) for i in range(m)])
    q = np.array([[yules_q(correct[i], correct[j]) for j in range(m)] for i in range(m)])
    return {
        "disagreement": _matrix(disagree),
        "yules_q": _matrix(q),
        "double_fault": _matrix(double_fault),
        "mean_disagreement": _off_diagonal_mean(disagree),
        "mean_yules_q": _off_diagonal_mean(q),
        "mean_double_fault": _off_diagonal_mean(double_fault),
        "oracle_top1": float(correct.any(0).mean()),
    }


def size_curve(report_probs: np.ndarray, labels: np.ndarray, order: Sequence[int],
               names: Sequence[str]) -> list[dict[str, Any]]:
    """Report-split top-1 and NLL of the `mean` ensemble of the first k members of `order`, k = 1..M.

    `order` is best member first by the FIT split (choosing it on the report split would flatter the curve).
    """
    total = np.zeros(report_probs.shape[1:], np.float64)
    curve = []
    for k, index in enumerate(order, start=1):
        total += report_probs[index]
        mixed = total / k
        curve.append({"k": k, "members": [names[i] for i in order[:k]],
                      "top1": float(np.mean(mixed.argmax(1) == labels)), "nll": nll(mixed, labels)})
    return curve
