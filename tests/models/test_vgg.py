"""VGG 11/13/16/19 with and without BatchNorm, and the adaptive average pooling it ends with."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn
import pytest

from cnnjax.models import list_models, model_info
from cnnjax.models.activations import Activation
from cnnjax.models.pooling import Window, adaptive_avg_pool, adaptive_bins, output_size, smallest_input
from tests.models.zoo_checks import (called_modules, check_forward, check_train_step, feature_shapes,
                                     dropout_rates, kernel_init_variance, param_count)

COUNTS = {
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992, "vgg19_bn": 143_678_248,
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_param_count(name):
    assert param_count(name) == COUNTS[name]


def test_registration():
    assert list_models("vgg*") == sorted(COUNTS)
    info = model_info("vgg16_bn")
    assert (info.torchvision, info.input_shape, info.min_input_size) == ("vgg16_bn", (224, 224, 3), 32)


def test_layout():
    """Convolutions per stage (configs A/B/D/E), BN after every conv of the _bn variants, 7x7 into fc6."""
    shapes = feature_shapes("vgg19_bn", 224)
    convs = sorted(k for k in shapes if k.startswith("conv"))
    assert len(convs) == 16 and {k.replace("conv", "bn") for k in convs} <= set(shapes)
    assert shapes["conv1_2"] == (1, 224, 224, 64) and shapes["conv5_4"] == (1, 14, 14, 512)
    assert shapes["fc6"] == (1, 4096)
    assert len([k for k in feature_shapes("vgg11", 32) if k.startswith("conv")]) == 8


def test_smallest_input_and_error():
    assert feature_shapes("vgg11", 32)["fc8"] == (1, 1000)
    with pytest.raises(ValueError, match="vgg11 needs inputs of at least 32x32"):
        feature_shapes("vgg11", (31, 64))


def test_vgg11_forward():
    check_forward("vgg11", 32)


def test_vgg11_bn_train_step():
    """BN variant: batch statistics are updated; every conv and fc kernel receives a gradient."""
    check_train_step("vgg11_bn", 32, num_classes=10)


def test_overrides():
    ran = called_modules("vgg13_bn", 32, dropout=0.2, act="leaky_relu", bn_momentum=0.99)
    assert dropout_rates("vgg13_bn", 32, dropout=0.2) == [0.2, 0.2]
    assert {m.kind for m in ran if isinstance(m, Activation)} == {"leaky_relu"}
    assert {m.momentum for m in ran if isinstance(m, nn.BatchNorm)} == {0.99}
    variance, _, fan_out = kernel_init_variance("vgg13", 32)  # torchvision's kaiming_normal(fan_out)
    assert variance == pytest.approx(2 / fan_out, rel=0.05)
    with pytest.raises(ValueError, match="VGG depth must be one of"):
        feature_shapes("vgg11", 32, depth=12)


@pytest.mark.parametrize("length, out", [(1, 7), (2, 7), (3, 6), (5, 7), (10, 4), (13, 6), (14, 7), (7, 7)])
def test_adaptive_avg_pool_bins(length, out):
    """Each output is the mean of its PyTorch bin [floor(i*L/n), ceil((i+1)*L/n)), on both axes."""
    x = np.random.default_rng(0).standard_normal((2, length, length + 3, 4)).astype(np.float32)
    got = np.asarray(jax.jit(adaptive_avg_pool, static_argnums=1)(jnp.asarray(x), (out, out - 1)))
    rows, cols = adaptive_bins(length, out), adaptive_bins(length + 3, out - 1)
    want = np.stack([np.stack([x[:, r0:r1, c0:c1].mean(axis=(1, 2)) for c0, c1 in cols], axis=1)
                     for r0, r1 in rows], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert all(e - s >= 1 for s, e in rows) and rows[0][0] == 0 and rows[-1][1] == length


def test_adaptive_bins_and_window_arithmetic():
    assert adaptive_bins(5, 3) == [(0, 2), (1, 4), (3, 5)]  # overlapping bins
    assert adaptive_bins(1, 3) == [(0, 1)] * 3  # upsampling replicates
    ceil_pool = Window(3, 2, 0, ceil_mode=True)
    assert [output_size(n, [ceil_pool]) for n in (1, 2, 3, 6, 13, 14)] == [0, 1, 1, 3, 6, 7]
    assert output_size(224, [Window(11, 4, 2), Window(3, 2)]) == 27
    assert smallest_input([Window(2, 2)] * 5) == 32
