"""Reading the training curves the way seed 004 §7 and seeds 002/003 ("babysitting the learning process") do.

Pure functions of the metrics a run has logged so far (`metrics.jsonl` records), so each rule is tested
on synthetic curves:

- loss NaN/Inf, or rising well above its best                 -> learning rate too high
- loss still falling, but slowly and along a straight line     -> learning rate too low
- train/validation top-1 gap large and growing                 -> overfitting (more regularisation/data)
- no gap, and the training top-1 itself low                    -> underfitting (more capacity, train longer)

Train top-1 is measured on augmented batches in training mode (dropout on), so it slightly understates
what the network fits; the gap thresholds leave room for that. The thresholds are `Rules`' defaults.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Rules:
    diverge_factor: float = 1.5  # mean loss of the last quarter above this times the best so far: diverging
    linear_r2: float = 0.95  # a straight line explains the loss curve at least this well ...
    linear_bend: float = 0.6  # ... and the second half falls at least this fraction of the first half's drop ...
    slow_drop: float = 0.5  # ... and the loss has lost less than this fraction of its first value: too low
    overfit_gap: float = 0.05  # train - validation top-1 at least this ...
    gap_growth: float = 0.01  # ... and grown by this over the previous epochs: overfitting
    no_gap: float = 0.02  # |train - validation top-1| below this ...
    low_top1: float = 0.6  # ... with train top-1 below this: underfitting
    min_points: int = 6  # loss values needed before judging the learning rate
    dead_relu: float = 0.5  # a layer with at least this fraction of dead ReLUs is named in a hint


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    flags: dict[str, bool]  # lr_too_high, lr_too_low, overfitting, underfitting
    values: dict[str, float]  # gap (train - validation top-1), ...
    hints: list[str]

    def record(self) -> dict[str, float]:
        """The numbers of a `diagnosis` record in metrics.jsonl (flags as 0/1)."""
        return {**{k: float(v) for k, v in self.flags.items()}, **self.values}


HINTS = {
    "lr_too_high": "loss is NaN or diverging: the learning rate is too high (lower --config.learning_rate, "
                   "or set --config.grad_clip_norm)",
    "lr_too_low": "loss falls slowly and linearly: the learning rate is probably too low (raise "
                  "--config.learning_rate)",
    "overfitting": "the train/validation gap is large and growing: overfitting (more augmentation, weight "
                   "decay, dropout or data; or stop earlier)",
    "underfitting": "no train/validation gap and low accuracy: underfitting (a bigger model, a higher "
                    "learning rate or longer training)",
}


def lr_too_high(losses: Sequence[float], rules: Rules = Rules()) -> bool:
    """Any non-finite loss, or the last quarter's mean far above the best earlier value."""
    if any(not math.isfinite(x) for x in losses):
        return True
    if len(losses) < rules.min_points:
        return False
    tail = max(1, len(losses) // 4)
    return float(np.mean(losses[-tail:])) > rules.diverge_factor * min(losses[:-tail])


def lr_too_low(losses: Sequence[float], rules: Rules = Rules()) -> bool:
    """Falling, nearly straight (high R² of a line, no flattening between the halves), and little lost yet."""
    y = np.asarray(losses, np.float64)
    if len(y) < rules.min_points or not np.isfinite(y).all() or y[-1] >= y[0]:
        return False
    x = np.arange(len(y), dtype=np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    r2 = 1.0 - float(((y - (slope * x + intercept)) ** 2).sum()) / max(float(((y - y.mean()) ** 2).sum()), 1e-30)
    half = len(y) // 2
    first, second = y[0] - y[half], y[half] - y[-1]
    bend = second / first if first > 0 else 0.0
    return slope < 0 and r2 >= rules.linear_r2 and bend >= rules.linear_bend and (y[0] - y[-1]) / y[0] < rules.slow_drop


def overfitting(gaps: Sequence[float], rules: Rules = Rules()) -> bool:
    """The last train-minus-validation gap is large and above the smallest of the two epochs before it."""
    if len(gaps) < 2:
        return False
    return gaps[-1] >= rules.overfit_gap and gaps[-1] - min(gaps[-3:-1]) >= rules.gap_growth


def underfitting(gap: float, train_top1: float, rules: Rules = Rules()) -> bool:
    return abs(gap) < rules.no_gap and train_top1 < rules.low_top1


def diagnose(records: Sequence[dict[str, Any]], rules: Rules = Rules()) -> Diagnosis:
    """The diagnosis of a run's metrics records so far (train records per log interval, validation per epoch)."""
    train = [r for r in records if r.get("split") == "train" and "loss" in r]
    validation = [r for r in records if r.get("split") == "validation" and "top1" in r]
    losses = [r["loss"] for r in train]
    flags = {"lr_too_high": lr_too_high(losses, rules), "lr_too_low": lr_too_low(losses, rules),
             "overfitting": False, "underfitting": False}
    values: dict[str, float] = {}
    gaps = [epoch_train_top1(train, v["epoch"]) - v["top1"] for v in validation]
    gaps = [g for g in gaps if math.isfinite(g)]
    if gaps:
        values["gap"] = gaps[-1]
        flags["overfitting"] = overfitting(gaps, rules)
        flags["underfitting"] = underfitting(gaps[-1], gaps[-1] + validation[-1]["top1"], rules)
    return Diagnosis(flags, values, [HINTS[k] for k, on in flags.items() if on])


def dead_relu_hints(fractions: dict[str, float], rules: Rules = Rules()) -> list[str]:
    """A hint per ReLU layer whose dead fraction reaches `rules.dead_relu`."""
    return [f"{fraction:.0%} of the ReLUs of {layer} are dead on the probe batch (a lower learning rate, "
            "--config.model_overrides.act=leaky_relu, or another init)"
            for layer, fraction in fractions.items() if fraction >= rules.dead_relu]


def epoch_train_top1(train: Sequence[dict[str, Any]], epoch: float) -> float:
    """Mean training top-1 of the log intervals of the epoch ending at `epoch` (NaN if none)."""
    rows = [r["top1"] for r in train if epoch - 1 < r["epoch"] <= epoch + 1e-9]
    return float(np.mean(rows)) if rows else float("nan")
