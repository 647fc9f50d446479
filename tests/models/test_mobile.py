"""MobileNet v1/v2, ShuffleNet v2 x1.0, EfficientNet-B0, and the blocks they share.

The helpers `host_variables`, `check_forward` and `check_train_step` (also used by the DenseNet tests) keep
compile time down: a jitted `model.init` spends ~20 s of CPU compiling threefry for every parameter, so
variables are drawn on the host with numpy, and XLA's backend optimisation (~35% of compile time) is
switched off for these one-off steps.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnjax.models import create_model
from cnnjax.models.efficientnet import B0_STAGES
from cnnjax.models.mobilenet import StochasticDepth
from cnnjax.models.shufflenet import channel_shuffle
from tests.models.test_alexnet import feature_shapes, param_count

FAST_COMPILE = {"xla_backend_optimization_level": 0}
MODELS = {"mobilenet_v1": 4_231_976, "mobilenet_v2": 3_504_872, "shufflenet_v2_x1_0": 2_278_604,
          "efficientnet_b0": 5_288_548}


def host_variables(model: nn.Module, x: jax.Array, seed: int = 0) -> dict:
    """Fan-in-scaled normal kernels, unit BN scale/variance, zero biases/means, 0.25 PReLU slopes."""
    rng = np.random.default_rng(seed)
    constant = {"scale": 1.0, "var": 1.0, "bias": 0.0, "mean": 0.0, "alpha": 0.25}

    def fill(path, leaf):
        name = path[-1].key
        if name in constant:
            return np.full(leaf.shape, constant[name], np.float32)
        return (rng.standard_normal(leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, jax.eval_shape(lambda: model.init(jax.random.key(0), x)))


def compiled(fn: Callable, *args: Any) -> Callable:
    return jax.jit(fn).lower(*args).compile(compiler_options=FAST_COMPILE)


def inputs(size: int, batch: int = 2) -> tuple[jax.Array, jax.Array]:
    x = jnp.asarray(np.random.default_rng(1).standard_normal((batch, size, size, 3)), jnp.float32)
    return x, jnp.arange(batch)


def check_forward(name: str, size: int, batch: int = 2, **overrides) -> jax.Array:
    """Compiled eval-mode forward; returns the logits after checking shape and finiteness."""
    model = create_model(name, **overrides)
    x, _ = inputs(size, batch)
    variables = host_variables(model, x)
    logits = compiled(lambda v, x: model.apply(v, x, train=False), variables, x)(variables, x)
    assert logits.shape == (batch, model.num_classes)
    assert bool(jnp.all(jnp.isfinite(logits)))
    return logits


def train_step(model: nn.Module, x: jax.Array, labels: jax.Array) -> Callable:
    """`step(variables, key) -> (loss, grads, updated batch_stats)` on softmax cross-entropy."""

    def step(variables, key):
        def loss_fn(params):
            logits, updates = model.apply({**variables, "params": params}, x, train=True,
                                          mutable=["batch_stats"], rngs={"dropout": key})
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), updates

        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])
        return loss, grads, updates

    return step


def check_train_step(name: str, size: int, batch: int = 2, **overrides) -> None:
    """One compiled gradient step: finite loss, every kernel gets a gradient, BN statistics move."""
    model = create_model(name, **overrides)
    x, labels = inputs(size, batch)
    variables = host_variables(model, x)
    key = jax.random.key(2)
    loss, grads, updates = compiled(train_step(model, x, labels), variables, key)(variables, key)
    assert bool(jnp.isfinite(loss))
    sizes = {jax.tree_util.keystr(p): float(jnp.abs(g).sum())
             for p, g in jax.tree_util.tree_leaves_with_path(grads)}
    assert all(np.isfinite(v) for v in sizes.values())
    assert all(v > 0 for k, v in sizes.items() if "kernel" in k), sizes  # every layer is reached
    before, after = jax.tree.leaves(variables["batch_stats"]), jax.tree.leaves(updates["batch_stats"])
    assert any(not np.allclose(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("name, count", MODELS.items())
def test_param_count(name, count):
    assert param_count(name) == count


@pytest.mark.parametrize("name", MODELS)
def test_downsamples_by_32(name):
    shapes = feature_shapes(name, 64)
    last = {"mobilenet_v1": "block13_pw", "shufflenet_v2_x1_0": "conv5"}.get(name, "head")
    assert shapes[last][1:3] == (2, 2)
    assert shapes[{"shufflenet_v2_x1_0": "fc"}.get(name, "classifier")] == (1, 1000)


def test_reference_defaults_and_act_override():
    v2, b0 = create_model("mobilenet_v2"), create_model("efficientnet_b0")
    assert (v2.act, b0.act, create_model("mobilenet_v1").act) == ("relu6", "silu", "relu")
    assert (v2.dropout_rate, b0.dropout_rate, b0.stochastic_depth_rate) == (0.2, 0.2, 0.2)
    assert b0.bn_epsilon == 1e-5  # torchvision's, not TensorFlow's 1e-3
    # act reaches every block (and EfficientNet's squeeze-excitation): PReLU adds one slope per channel.
    assert param_count("mobilenet_v2", act="prelu") > MODELS["mobilenet_v2"]
    assert param_count("efficientnet_b0", act="prelu") > MODELS["efficientnet_b0"]


def test_channel_shuffle_interleaves_groups():
    x = jnp.arange(8.0).reshape(1, 1, 1, 8)
    np.testing.assert_array_equal(channel_shuffle(x, 2)[0, 0, 0], [0, 4, 1, 5, 2, 6, 3, 7])
    np.testing.assert_array_equal(channel_shuffle(x, 4)[0, 0, 0], [0, 2, 4, 6, 1, 3, 5, 7])
    with pytest.raises(ValueError):
        channel_shuffle(x, 3)


def test_stochastic_depth_drops_whole_examples_in_training_only():
    x = jnp.ones((4000, 2, 2, 3))
    assert StochasticDepth(0.25, deterministic=True).apply({}, x) is x
    y = StochasticDepth(0.25, deterministic=False).apply({}, x, rngs={"dropout": jax.random.key(0)})
    per_example = np.asarray(y).reshape(len(x), -1)
    np.testing.assert_allclose(np.unique(per_example), [0.0, 1.0 / 0.75], rtol=1e-6)  # survivors rescaled
    assert np.all(per_example.min(axis=1) == per_example.max(axis=1))  # one decision per example
    assert abs((per_example[:, 0] == 0).mean() - 0.25) < 0.03
    with pytest.raises(Exception, match="dropout"):  # draws from the 'dropout' rng stream
        StochasticDepth(0.25, deterministic=False).apply({}, x)


def test_mobilenet_v1_forward():
    check_forward("mobilenet_v1", 32)


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "shufflenet_v2_x1_0"])
def test_train_step(name):
    check_train_step(name, 32)


def test_efficientnet_train_step():
    """The full B0 step is traced (compiling it costs ~30 s of CPU); its first three stages, whose MBConv
    blocks have every feature of the full model (expansion, 3x3 and 5x5 depthwise, SE, residual), run one.
    Stochastic depth is off there so that every kernel must receive a gradient (the drop is tested above)."""
    model = create_model("efficientnet_b0")
    x, labels = inputs(32)
    variables = host_variables(model, x)
    loss, grads, _ = jax.eval_shape(train_step(model, x, labels), variables, jax.random.key(0))
    assert loss.shape == () and jax.tree.structure(grads) == jax.tree.structure(variables["params"])
    check_train_step("efficientnet_b0", 32, stages=B0_STAGES[:3], stochastic_depth_rate=0.0)
