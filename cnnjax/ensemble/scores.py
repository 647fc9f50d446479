"""Per-prediction scores of a probability matrix: top-1/top-5, NLL, ECE, Brier and reliability bins (float64).

Every metric takes probabilities, not logits, because combined ensembles (a mean of probabilities, vote
shares) have no logits. An optional `rank` matrix orders the classes when it is not the probabilities
themselves (majority vote ranks by votes, then by mean probability); ties of `rank` go to the lower class
index, exactly as `np.argmax` does, so top-1 and "the predicted class" are always the same thing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ECE_BINS = 15
TINY = 1e-300  # floor before log: a probability that underflowed to 0 gives a finite (huge) NLL, not inf


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Log-probabilities in float64 (the cached logits are float32; sums of many of them are not)."""
    x = np.asarray(logits, np.float64)
    x = x - x.max(axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis, keepdims=True))


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.exp(log_softmax(logits, axis))


def safe_log(probs: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(probs, TINY))


def label_rank(rank: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """0-based position of each label when the classes are sorted by `rank` (descending, ties by lower index).

    Equal to the position in a stable argsort of -rank, in O(N*C) instead of O(N*C*log C).
    """
    labels = np.asarray(labels)
    own = rank[np.arange(len(labels)), labels][:, None]
    ahead_by_index = np.arange(rank.shape[1])[None, :] < labels[:, None]
    return (rank > own).sum(1) + ((rank == own) & ahead_by_index).sum(1)


def correct(rank: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-example top-1 correctness (bool), the input of McNemar's test and the bootstrap."""
    return np.argmax(rank, 1) == np.asarray(labels)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-safe_log(probs[np.arange(len(labels)), labels]).mean())


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score: mean over examples of sum_c (p_c - y_c)^2 (0 is perfect, 2 is worst)."""
    onehot = np.zeros_like(probs, dtype=np.float64)
    onehot[np.arange(len(labels)), labels] = 1.0
    return float(((probs - onehot) ** 2).sum(1).mean())


def _confidence_and_hits(probs: np.ndarray, labels: np.ndarray, rank: np.ndarray | None):
    predicted = np.argmax(probs if rank is None else rank, 1)
    return probs[np.arange(len(labels)), predicted], predicted == np.asarray(labels)


def _bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Bins (b/bins, (b+1)/bins], the convention of Guo et al. (2017); a confidence of exactly 0 goes to bin 0."""
    return np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)


def reliability(probs: np.ndarray, labels: np.ndarray, *, rank: np.ndarray | None = None,
                bins: int = ECE_BINS) -> list[dict[str, Any]]:
    """Reliability-diagram data: per equal-width confidence bin its edges, mean confidence, accuracy, count.

    The confidence is the probability of the predicted class; empty bins have confidence/accuracy None.
    """
    confidence, hits = _confidence_and_hits(probs, labels, rank)
    index = _bin_index(confidence, bins)
    count = np.bincount(index, minlength=bins)
    conf_sum = np.bincount(index, confidence, minlength=bins)
    hit_sum = np.bincount(index, hits.astype(np.float64), minlength=bins)
    return [{"low": b / bins, "high": (b + 1) / bins, "count": int(count[b]),
             "confidence": float(conf_sum[b] / count[b]) if count[b] else None,
             "accuracy": float(hit_sum[b] / count[b]) if count[b] else None} for b in range(bins)]


def ece(probs: np.ndarray, labels: np.ndarray, *, rank: np.ndarray | None = None, bins: int = ECE_BINS) -> float:
    """Expected calibration error: sum over bins of |accuracy_b - confidence_b| * n_b / N."""
    table = reliability(probs, labels, rank=rank, bins=bins)
    n = len(labels)
    return float(sum(abs(b["accuracy"] - b["confidence"]) * b["count"] / n for b in table if b["count"]))


def topk(rank: np.ndarray, labels: np.ndarray, k: int) -> float:
    return float(np.mean(label_rank(rank, labels) < k))


def prediction_metrics(probs: np.ndarray, labels: np.ndarray, *, rank: np.ndarray | None = None,
                       with_nll: bool = True) -> dict[str, float | None]:
    """top1, top5 (k = min(5, C)), nll (None when `with_nll` is false), ece and brier of one prediction matrix."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels)
    order = probs if rank is None else rank
    return {
        "top1": topk(order, labels, 1),
        "top5": topk(order, labels, min(5, probs.shape[1])),
        "nll": nll(probs, labels) if with_nll else None,
        "ece": ece(probs, labels, rank=rank),
        "brier": brier(probs, labels),
    }
