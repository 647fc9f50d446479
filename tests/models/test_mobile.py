"""MobileNet v1/v2, ShuffleNet v2 x1.0, EfficientNet-B0, and the blocks they share."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.models import create_model
from cnnjax.models.activations import Activation
from cnnjax.models.blocks import StochasticDepth
from cnnjax.models.families.efficientnet import B0_STAGES
from cnnjax.models.families.shufflenet import channel_shuffle
from tests.models.zoo_checks import (called_modules, check_forward, check_train_step, dropout_rates, feature_shapes,
                                     images, init_shapes, param_count, train_step)

MODELS = {"mobilenet_v1": 4_231_976, "mobilenet_v2": 3_504_872, "shufflenet_v2_x1_0": 2_278_604,
          "efficientnet_b0": 5_288_548}


@pytest.mark.parametrize("name, count", MODELS.items())
def test_param_count(name, count):
    assert param_count(name) == count


@pytest.mark.parametrize("name", MODELS)
def test_downsamples_by_32(name):
    shapes = feature_shapes(name, 64)
    last = {"mobilenet_v1": "block13_pw", "shufflenet_v2_x1_0": "conv5"}.get(name, "head")
    assert shapes[last][1:3] == (2, 2)
    assert shapes[{"shufflenet_v2_x1_0": "fc"}.get(name, "classifier")] == (1, 1000)


@pytest.mark.parametrize("name, act, dropout", [("mobilenet_v2", "relu6", [0.2]),
                                                 ("efficientnet_b0", "silu", [0.2]), ("mobilenet_v1", "relu", [])])
def test_reference_defaults_reach_the_layers_that_run(name, act, dropout):
    """The reference recipes, on the layers a training forward calls (traced, nothing computed)."""
    ran = called_modules(name, 32)
    assert {m.kind for m in ran if isinstance(m, Activation)} == {act}
    assert dropout_rates(name, 32) == dropout
    assert {m.epsilon for m in ran if isinstance(m, nn.BatchNorm)} == {1e-5}  # torchvision's, not TF's 1e-3


def test_efficientnet_stochastic_depth_grows_with_the_block_index():
    """torchvision: block i of 16 drops its residual branch with probability 0.2 * i / 16; only the 9
    blocks with a residual connection have one."""
    rates = [m.rate for m in called_modules("efficientnet_b0", 32) if isinstance(m, StochasticDepth)]
    assert rates == pytest.approx([0.2 * i / 16 for i in (2, 4, 6, 7, 9, 10, 12, 13, 14)])
    doubled = [m.rate for m in called_modules("efficientnet_b0", 32, stochastic_depth_rate=0.4)
               if isinstance(m, StochasticDepth)]
    assert doubled == pytest.approx([2 * r for r in rates])


def test_act_override():
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
    x, labels = images(32), jnp.arange(2)
    variables = init_shapes(model, x)
    state, metrics = jax.eval_shape(train_step(model, x, labels), variables, jax.random.PRNGKey(0))
    assert metrics["loss"].shape == () and jax.tree.structure(state.params) == jax.tree.structure(variables["params"])
    check_train_step("efficientnet_b0", 32, stages=B0_STAGES[:3], stochastic_depth_rate=0.0)
