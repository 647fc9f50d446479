"""AlexNet (paper), AlexNet one-tower (torchvision), ZFNet, and the LRN they use."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.models import create_model, model_info
from cnnjax.models.lrn import local_response_norm
from tests.models.zoo_checks import (check_forward, check_train_step, dropout_rates, feature_shapes, host_variables,
                                     param_count)


@pytest.mark.parametrize("name, count", [
    ("alexnet", 60_965_224), ("alexnet_owt", 61_100_840), ("zfnet", 62_357_608)])
def test_param_count(name, count):
    assert param_count(name) == count


def test_alexnet_grouped_convolutions():
    """conv2/4/5 each see half of their input channels (two GPUs); conv3 sees all of them."""
    model = create_model("alexnet")
    x = jnp.zeros((1, 224, 224, 3))
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), x))["params"]
    in_channels = {k: params[k]["kernel"].shape[2] for k in ("conv2", "conv3", "conv4", "conv5")}
    assert in_channels == {"conv2": 48, "conv3": 256, "conv4": 192, "conv5": 192}


@pytest.mark.parametrize("name, sizes", [
    # the paper's 55-27-13-6 maps at 224 (conv1 padding 2), and ZFNet's Fig. 3: 110-55-26-13-6
    ("alexnet", {"conv1": 55, "conv2": 27, "conv5": 13}),
    ("alexnet_owt", {"conv1": 55, "conv2": 27, "conv5": 13}),
    ("zfnet", {"conv1": 110, "conv2": 26, "conv5": 13}),
])
def test_feature_map_sizes_at_224(name, sizes):
    shapes = feature_shapes(name, 224)
    assert {k: shapes[k][1] for k in sizes} == sizes
    assert shapes["fc6"] == (1, 4096) and shapes["fc8"] == (1, 1000)


@pytest.mark.parametrize("name", ["alexnet", "alexnet_owt", "zfnet"])
def test_smallest_input_runs_and_smaller_raises(name):
    size = model_info(name).min_input_size
    assert size == {"alexnet": 63, "alexnet_owt": 63, "zfnet": 47}[name]
    assert feature_shapes(name, size)["fc8"] == (1, 1000)
    with pytest.raises(ValueError, match=f"at least {size}x{size}"):
        feature_shapes(name, (size, size - 1))


@pytest.mark.parametrize("name", ["alexnet", "alexnet_owt", "zfnet"])
def test_forward_at_smallest_input(name):
    check_forward(name, model_info(name).min_input_size)


def test_alexnet_train_step():
    check_train_step("alexnet", model_info("alexnet").min_input_size, num_classes=10)


def test_overrides():
    """lrn=False removes only parameter-free layers; act/dropout/init apply to every model of the file."""
    x = jax.random.normal(jax.random.key(0), (1, 63, 63, 3))
    base = create_model("alexnet", num_classes=10)
    ablated = base.clone(lrn=False)
    variables = host_variables(base, x)
    assert param_count("alexnet", lrn=False) == param_count("alexnet")
    assert not np.allclose(jax.jit(base.apply)(variables, x), jax.jit(ablated.apply)(variables, x))
    size = model_info("zfnet").min_input_size  # dropout reaches both classifier layers, in training only
    assert dropout_rates("zfnet", size, dropout=0.3) == [0.3, 0.3] and dropout_rates("zfnet", size, False) == []
    assert param_count("alexnet_owt", act="prelu") == 61_100_840 + 64 + 192 + 384 + 256 + 256 + 4096 + 4096
    with pytest.raises(ValueError, match="unknown AlexNet arch"):
        feature_shapes("alexnet", 224, arch="alexnet2")


def _lrn_reference(x: np.ndarray, size: int, alpha: float, beta: float, k: float) -> np.ndarray:
    """The formula, one channel at a time (channels outside [0, C) contribute nothing)."""
    c = x.shape[-1]
    out = np.empty_like(x)
    for i in range(c):
        lo, hi = max(0, i - size // 2), min(c, i + (size - 1) // 2 + 1)
        s = np.sum(x[..., lo:hi] ** 2, axis=-1)
        out[..., i] = x[..., i] / (k + alpha / size * s) ** beta
    return out


@pytest.mark.parametrize("size, channels", [(5, 12), (4, 7), (5, 3)])
def test_lrn_matches_formula(size, channels):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, channels)).astype(np.float32) * 30
    got = local_response_norm(jnp.asarray(x), size=size, alpha=1e-2, beta=0.75, k=2.0)
    np.testing.assert_allclose(got, _lrn_reference(x, size, 1e-2, 0.75, 2.0), rtol=1e-5, atol=1e-6)
    assert local_response_norm(jnp.asarray(x, jnp.bfloat16)).dtype == jnp.bfloat16
