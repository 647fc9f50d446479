"""Per-class precision, recall, F1 and support from exact predictions (every example counted once).

Overall top-1 hides what a class-imbalanced or hard class gets: recall is the share of a class's examples
predicted as it, precision the share of the predictions of a class that are right. A class that is never
predicted has precision 0 (scikit-learn's zero_division=0), one with no examples recall 0; F1 is then 0 too.
A prediction outside 0..K-1 (a head wider than the dataset, e.g. 1000 ImageNet classes scored on 10) is wrong
for its example's class and counts as no class's prediction.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def per_class_metrics(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> dict[str, Any]:
    """{"precision", "recall", "f1": lists of K floats, "support": K example counts, "macro_precision",
    "macro_recall", "macro_f1": unweighted means over the K classes} of integer `predictions` vs `labels`."""
    labels, predictions = np.asarray(labels, np.int64), np.asarray(predictions, np.int64)
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} must be equal-length vectors")
    inside = (predictions >= 0) & (predictions < num_classes)
    matrix = np.zeros((num_classes, num_classes), np.int64)  # rows: true class, columns: predicted class
    np.add.at(matrix, (labels[inside], predictions[inside]), 1)
    right = np.diag(matrix).astype(np.float64)
    support, predicted = np.bincount(labels, minlength=num_classes), matrix.sum(0)
    precision = np.divide(right, predicted, out=np.zeros(num_classes), where=predicted > 0)
    recall = np.divide(right, support, out=np.zeros(num_classes), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(num_classes), where=both > 0)
    return {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
            "support": support.astype(int).tolist(), "macro_precision": float(precision.mean()),
            "macro_recall": float(recall.mean()), "macro_f1": float(f1.mean())}


def format_per_class(metrics: dict[str, Any], class_names: Sequence[str]) -> str:
    """A Markdown table: class, precision, recall, F1, support, one row a class."""
    names = [str(n) for n in class_names]
    width = max(len("class"), *(len(n) for n in names))
    lines = [f"| {'class':{width}} | precision | recall |   F1   | support |",
             f"|{'-' * (width + 2)}|-----------|--------|--------|---------|"]
    for name, p, r, f, n in zip(names, metrics["precision"], metrics["recall"], metrics["f1"], metrics["support"]):
        lines.append(f"| {name:{width}} | {100 * p:8.2f}% | {100 * r:5.2f}% | {100 * f:5.2f}% | {n:7,d} |")
    return "\n".join(lines)
