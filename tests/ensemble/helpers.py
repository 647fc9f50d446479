"""Seeded synthetic member logits shared by the ensemble tests (float64, so no CPU-specific float32 rounding)."""

from __future__ import annotations

import numpy as np


def members(num_members: int, examples: int, classes: int, seed: int = 0, *, skill: float = 1.5,
            labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(M, N, C) logits of correlated members of different skill, and the labels they were drawn for."""
    rng = np.random.default_rng(seed)
    if labels is None:
        labels = rng.integers(0, classes, examples)
    onehot = np.eye(classes)[labels]
    shared = rng.normal(size=(examples, classes))
    logits = [(skill + 0.3 * m) * onehot + 0.8 * shared + rng.normal(size=(examples, classes))
              for m in range(num_members)]
    return np.stack(logits), labels
