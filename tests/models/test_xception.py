"""Xception (Keras layout): count, structure, input limit, forward and train step at the minimum input."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from cnnjax.models import create_model, model_info
from tests.models.zoo_checks import called_modules, check_train_step, init_shapes, kernel_init_variance, param_count


def test_param_count():
    assert param_count("xception") == 22_855_952  # Chollet 2017, Table 1 (= Keras' trainable count)


def test_layout():
    """8 middle blocks of 3 separable convs; separable = bias-free depthwise 3x3 + pointwise 1x1."""
    model = create_model("xception")
    params = init_shapes(model, jnp.zeros((1, 71, 71, 3)))["params"]
    assert {k for k in params if k.startswith("block") and "_" not in k} == {f"block{i}" for i in range(2, 14)}
    sep = params["block7"]["sepconv2"]
    assert sep["depthwise"]["kernel"].shape == (3, 3, 1, 728)
    assert sep["pointwise"]["kernel"].shape == (1, 1, 728, 728)
    assert "bias" not in sep["depthwise"] and "bias" not in sep["pointwise"]
    assert params["block13"]["residual"]["kernel"].shape == (1, 1, 728, 1024)
    assert {m.epsilon for m in called_modules(model, 71) if isinstance(m, nn.BatchNorm)} == {1e-3}
    variance, fan_in, fan_out = kernel_init_variance(model, 71)  # Keras' glorot_uniform
    assert variance == pytest.approx(2 / (fan_in + fan_out), rel=0.05)


def test_too_small_input_raises():
    model = create_model("xception")
    with pytest.raises(ValueError, match="xception needs inputs of at least 71x71"):
        init_shapes(model, jnp.zeros((1, 70, 71, 3)))


def test_forward_shape_and_train_step_at_min_size():
    size = model_info("xception").min_input_size
    assert size == 71
    model = create_model("xception", num_classes=10)
    x = jnp.zeros((2, size, size, 3))
    variables = init_shapes(model, x)
    assert jax.eval_shape(lambda v: model.apply(v, x), variables).shape == (2, 10)
    check_train_step("xception", size, num_classes=10)
