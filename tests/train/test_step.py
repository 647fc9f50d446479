"""The real train step's options reach the loss: label smoothing, auxiliary heads, bfloat16 compute.

Each expected loss is recomputed in float64 NumPy from the logits the model returns, so the test checks
the formula the step applies, not a copy of its code.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnjax.config import base_config
from cnnjax.models import create_model
from cnnjax.train import optim
from cnnjax.train.state import create_train_state
from cnnjax.train.step import StepConfig, train_step

U32 = float(np.finfo(np.float32).eps) / 2
U_BF16 = 2.0 ** -8  # bfloat16 keeps 8 significant bits


def _setup(name: str, shape: tuple[int, int, int], batch: int = 4, **overrides):
    model = create_model(name, 10, **overrides)
    config = base_config()
    schedule = optim.make_schedule(config, 10)
    tx = optim.make_optimizer(config, schedule)
    state = jax.jit(lambda: create_train_state(model, tx, shape, seed=0))()  # one compile, not one per op
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.normal(size=(batch, *shape)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 10, batch), jnp.int32)
    step = functools.partial(train_step, model=model, tx=tx, schedule=schedule, axis_name=None)
    return model, state, images, labels, step


def _nll(logits: np.ndarray, labels: np.ndarray, smoothing: float = 0.0) -> float:
    """Mean cross-entropy against (1 - s) one-hot + s / K, in float64."""
    logits = np.asarray(logits, np.float64)
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    targets = np.eye(logits.shape[1])[labels] * (1 - smoothing) + smoothing / logits.shape[1]
    return float(-(targets * log_p).sum(1).mean())


def _train_mode_outputs(model, state, images):
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    rng = jax.random.fold_in(state.rng, state.step)
    apply = jax.jit(functools.partial(model.apply, train=True, mutable=["batch_stats", "aux_logits"]))
    logits, extra = apply(variables, images, rngs={"dropout": rng})
    return np.asarray(logits), {k: np.asarray(v) for k, v in
                                jax.tree_util.tree_leaves_with_path(extra.get("aux_logits", {}))}


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.4])
def test_label_smoothing_reaches_the_loss(smoothing):
    model, state, images, labels, step = _setup("lenet5", (28, 28, 1))
    _, metrics = jax.jit(functools.partial(step, cfg=StepConfig(label_smoothing=smoothing)))(state, images, labels)
    logits, _ = _train_mode_outputs(model, state, images)
    expected = _nll(logits, np.asarray(labels), smoothing)
    # one float32 log-softmax over 10 classes and a mean of 4: a few hundred u32 at most
    assert abs(float(metrics["loss"]) - expected) < 1e3 * U32 * expected


def test_auxiliary_heads_add_their_weighted_losses():
    model, state, images, labels, step = _setup("googlenet", (64, 64, 3), batch=2, aux_logits=True)
    logits, aux = _train_mode_outputs(model, state, images)
    assert len(aux) == 2  # GoogLeNet's aux1 and aux2
    main = _nll(logits, np.asarray(labels))
    aux_total = sum(_nll(a.reshape(-1, 10), np.asarray(labels)) for a in aux.values())
    weight = 0.3  # one compile of GoogLeNet's step: the loss must be main + weight * (aux1 + aux2), and
    compiled = jax.jit(functools.partial(step, cfg=StepConfig(aux_loss_weight=weight))).lower(
        state, images, labels).compile({"xla_backend_optimization_level": 0})  # what is tested is the sum
    _, metrics = compiled(state, images, labels)
    expected = main + weight * aux_total  # weight * aux_total (> 1) is far outside the tolerance
    assert weight * aux_total > 1 and abs(float(metrics["loss"]) - expected) < 1e3 * U32 * expected


def test_a_bfloat16_step_computes_in_bfloat16_and_updates_float32_parameters():
    _, state32, images, labels, step32 = _setup("lenet5", (28, 28, 1), batch=16)
    _, state16, _, _, step16 = _setup("lenet5", (28, 28, 1), batch=16, dtype=jnp.bfloat16)
    new32, m32 = jax.jit(functools.partial(step32, cfg=StepConfig()))(state32, images, labels)
    new16, m16 = jax.jit(functools.partial(step16, cfg=StepConfig()))(state16, images, labels)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(new16.params))
    assert float(m16["loss"]) != float(m32["loss"])  # really computed in a narrower type
    # 5 layers, each rounding its output to 8 bits: relative error at most ~ 5 * u_bf16 on the loss
    assert abs(float(m16["loss"]) - float(m32["loss"])) < 5 * U_BF16 * float(m32["loss"])
    moved = optax.tree.norm(jax.tree.map(lambda a, b: a - b, new16.params, state16.params))
    assert float(moved) > 0


def test_soft_targets_reach_the_loss_and_one_hot_targets_equal_integer_labels():
    """Mixup/CutMix batches: the step takes (B, K) targets; label smoothing composes with them; training top-1
    is against their argmax. One-hot targets give exactly the integer-label step (the default path)."""
    model, state, images, labels, step = _setup("mlp", (6, 6, 1), hidden=(16,))
    smoothing = 0.1
    run = jax.jit(functools.partial(step, cfg=StepConfig(label_smoothing=smoothing)))
    _, hard = run(state, images, labels)
    _, one_hot = run(state, images, jax.nn.one_hot(labels, 10, dtype=jnp.float32))
    assert float(hard["loss"]) == float(one_hot["loss"]) and float(hard["top1"]) == float(one_hot["top1"])
    lam = 0.7  # each example mixed with the next one's label, as cnnjax.data.mixing does
    targets = lam * np.eye(10)[np.asarray(labels)] + (1 - lam) * np.eye(10)[np.roll(np.asarray(labels), 1)]
    _, mixed = run(state, images, jnp.asarray(targets, jnp.float32))
    logits, _ = _train_mode_outputs(model, state, images)
    log_p = np.asarray(logits, np.float64) - np.log(np.exp(np.asarray(logits, np.float64)).sum(1, keepdims=True))
    expected = float(-(((1 - smoothing) * targets + smoothing / 10) * log_p).sum(1).mean())
    assert abs(float(mixed["loss"]) - expected) < 1e3 * U32 * expected
    assert abs(float(mixed["loss"]) - float(hard["loss"])) > 1e3 * U32 * expected  # mixing changed the loss
    assert float(mixed["top1"]) == np.mean(logits.argmax(1) == targets.argmax(1))
