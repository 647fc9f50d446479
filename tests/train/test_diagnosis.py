"""Each diagnosis rule fires on the curve it describes and not on a healthy run; the loop writes the record."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.metrics_log import read_metrics
from cnnjax.models import create_model
from cnnjax.train import diagnosis
from cnnjax.train.dead_relu import dead_fractions

STEPS = np.arange(40, dtype=np.float64)
NOISE = np.random.default_rng(0).normal(0, 0.01, len(STEPS))
HEALTHY = list(0.3 + 2.0 * np.exp(-STEPS / 6) + NOISE)  # fast drop, then flattening (seed 004's "good")
TOO_HIGH = list(np.concatenate([2.3 - 0.05 * STEPS[:20], 1.3 + 0.2 * STEPS[:20]]) + NOISE)  # falls, then blows up
TOO_LOW = list(2.3 - 0.005 * STEPS + NOISE / 10)  # a straight, slow descent


def _records(losses, train_top1, val_top1):
    """Four log intervals per epoch; one validation record at each epoch end."""
    train = [{"split": "train", "epoch": (i + 1) / 4, "loss": loss, "top1": train_top1[i // 4]}
             for i, loss in enumerate(losses)]
    val = [{"split": "validation", "epoch": e + 1.0, "top1": t} for e, t in enumerate(val_top1)]
    return train + val


@pytest.mark.parametrize("curve, rule", [(TOO_HIGH, "lr_too_high"), (TOO_LOW, "lr_too_low"),
                                         ([2.3, 2.1, float("nan")], "lr_too_high")])
def test_each_learning_rate_rule_fires_on_its_curve_only(curve, rule):
    assert getattr(diagnosis, rule)(curve)
    assert not diagnosis.lr_too_high(HEALTHY) and not diagnosis.lr_too_low(HEALTHY)
    other = {"lr_too_high": diagnosis.lr_too_low, "lr_too_low": diagnosis.lr_too_high}[rule]
    assert not other([x for x in curve if np.isfinite(x)])


def test_gap_rules_on_synthetic_epochs():
    healthy_train, healthy_val = [0.7, 0.8, 0.85, 0.88], [0.7, 0.79, 0.83, 0.86]
    over_train, over_val = [0.8, 0.9, 0.95, 0.99], [0.78, 0.82, 0.83, 0.82]
    under_train, under_val = [0.3, 0.35, 0.38, 0.4], [0.3, 0.36, 0.38, 0.4]
    losses = HEALTHY[:16]
    healthy = diagnosis.diagnose(_records(losses, healthy_train, healthy_val))
    assert not any(healthy.flags.values()) and not healthy.hints
    over = diagnosis.diagnose(_records(losses, over_train, over_val))
    assert over.flags["overfitting"] and not over.flags["underfitting"]
    assert over.values["gap"] == pytest.approx(0.99 - 0.82) and "overfitting" in over.hints[0]
    under = diagnosis.diagnose(_records(losses, under_train, under_val))
    assert under.flags["underfitting"] and not under.flags["overfitting"]


def test_dead_fraction_counts_units_never_active():
    model = create_model("mlp", 10, act="relu")
    variables = jax.tree.map(np.array, jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 28, 28, 1))))
    width = variables["params"]["Dense_0"]["bias"].shape[0]
    variables["params"]["Dense_0"]["bias"][: width // 4] = -1e6  # a quarter can never fire
    variables["params"]["Dense_0"]["bias"][width // 4:] = 1e6  # the rest always do
    images = jax.random.uniform(jax.random.key(1), (8, 28, 28, 1))
    assert dead_fractions(model, variables, images) == {"Activation_0": (width // 4) / width}


def test_the_loop_writes_a_diagnosis_record_with_dead_relus_per_layer(lenet5_workdir):
    records = [r for r in read_metrics(lenet5_workdir) if r["split"] == "diagnosis"]
    assert len(records) == 1 and records[0]["epoch"] == 1.0
    assert {k for k in records[0] if k.startswith("dead_relu/")} == {f"dead_relu/Activation_{i}" for i in range(4)}
    assert set(diagnosis.HINTS) <= set(records[0]) and "gap" in records[0]
