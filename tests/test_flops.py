"""MAC counting: exact hand-derived counts for the small models, published figures for the zoo, and
XLA's own cost analysis as an independent cross-check."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from cnnjax.introspect import NumClassesError, count_macs, jaxpr_macs, model_macs, xla_flops


def conv_macs(h: int, w: int, k: int, cin: int, cout: int) -> int:
    return h * w * cout * k * k * cin


def test_mlp_is_its_two_matrix_products():
    assert count_macs("mlp") == 28 * 28 * 256 + 256 * 10 == 203_264


def test_lenet5_macs():
    """C1 28x28x6 (5x5x1), C3 10x10x16 (5x5x6), 400->120->84->10: 416,520 on the padded 32x32 input."""
    expected = conv_macs(28, 28, 5, 1, 6) + conv_macs(10, 10, 5, 6, 16) + 400 * 120 + 120 * 84 + 84 * 10
    assert expected == 416_520
    assert count_macs("lenet5") == expected
    assert count_macs("lenet5", input_size=32) == expected  # the 28x28 input is padded to 32x32 anyway


def test_keras_cnn_macs():
    expected = (conv_macs(28, 28, 3, 1, 32) + conv_macs(26, 26, 3, 32, 32) + conv_macs(13, 13, 3, 32, 64)
                + conv_macs(11, 11, 3, 64, 64) + 5 * 5 * 64 * 512 + 512 * 10)
    assert count_macs("keras_cnn") == expected == 14_855_680


def test_resnet20_macs():
    """3x3 stem, 3 stages of 3 blocks x 2 convs (16/32/64 filters at 32/16/8 px), option-A shortcuts: 40.55M."""
    stem = conv_macs(32, 32, 3, 3, 16)
    stages = sum(6 * conv_macs(s, s, 3, c, c) - (conv_macs(s, s, 3, c, c) - conv_macs(s, s, 3, c // 2, c)
                                                 if c > 16 else 0)
                 for s, c in ((32, 16), (16, 32), (8, 64)))
    expected = stem + stages + 64 * 10
    assert count_macs("resnet20") == expected == 40_551_040
    # Option B adds the two 1x1 projection convolutions.
    assert count_macs("resnet20", shortcut="B") == expected + conv_macs(16, 16, 1, 16, 32) + conv_macs(8, 8, 1, 32, 64)


def test_num_classes_and_input_size_change_the_count():
    assert count_macs("mlp", num_classes=100) == 28 * 28 * 256 + 256 * 100
    assert count_macs("resnet20", input_size=64) == 4 * (count_macs("resnet20") - 640) + 640


@pytest.mark.parametrize("num_classes", [0, -1])
def test_fewer_than_one_class_is_refused_before_tracing(num_classes):
    with pytest.raises(NumClassesError, match=f"mlp needs at least 1 class, got num_classes={num_classes}"):
        count_macs("mlp", num_classes=num_classes)


# GMACs per image at the registered input: torchvision's `_ops` metadata (3 decimals; its docs round to 2),
# or the layer-by-layer [CALC]/paper figure of the reference table for models without a twin.
PUBLISHED_GMACS = {
    "alexnet_owt": 0.714, "vgg11": 7.609, "vgg11_bn": 7.609, "vgg13": 11.308, "vgg16": 15.470,
    "vgg16_bn": 15.470, "vgg19": 19.632, "googlenet": 1.498, "inception_v3": 5.713,
    "resnet18": 1.814, "resnet34": 3.664, "resnet50": 4.089, "resnet101": 7.801, "resnet152": 11.514,
    "wide_resnet50_2": 11.398, "resnext50_32x4d": 4.230, "densenet121": 2.834, "densenet169": 3.360,
    "densenet201": 4.291, "squeezenet1_0": 0.819, "squeezenet1_1": 0.349, "mobilenet_v2": 0.301,
    "shufflenet_v2_x1_0": 0.145, "efficientnet_b0": 0.386,
    # no torchvision twin: grouped AlexNet, ZFNet, Xception at 299, SE-ResNet-50 (v1), MobileNet v1 (569M).
    "alexnet": 0.724, "zfnet": 1.168, "xception": 8.357, "se_resnet50": 3.860, "mobilenet_v1": 0.569,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_GMACS))
def test_zoo_matches_published_macs(name):
    gmacs = count_macs(name) / 1e9
    assert gmacs == pytest.approx(PUBLISHED_GMACS[name], abs=5e-4)  # i.e. equal to the 3 published decimals


class _ConvDense(nn.Module):
    """Only convolutions (one grouped) and a dense layer: XLA's flops are then exactly 2 x MACs."""

    padding: str = "VALID"

    @nn.compact
    def __call__(self, x, train=False):
        x = nn.Conv(8, (3, 3), padding=self.padding, use_bias=False)(x)
        x = nn.Conv(8, (3, 3), strides=2, padding=self.padding, use_bias=False, feature_group_count=4)(x)
        return nn.Dense(5, use_bias=False)(x.reshape(x.shape[0], -1))


def test_xla_cost_analysis_is_twice_the_macs_of_a_conv_dense_net():
    module = _ConvDense()
    macs = model_macs(module, (12, 12, 4))
    assert macs == conv_macs(10, 10, 3, 4, 8) + conv_macs(4, 4, 3, 2, 8) + 4 * 4 * 8 * 5
    assert xla_flops(module, (12, 12, 4)) == 2 * macs
    assert model_macs(module, (12, 12, 4), batch=3) == 3 * macs


def test_xla_skips_padded_taps_that_torchvision_counts():
    """Why XLA's figure is not the reported one: with SAME padding it leaves out the products with the
    padding, which torchvision's counter (and every paper's) includes; and it adds BN/activation flops."""
    module = _ConvDense("SAME")
    assert xla_flops(module, (12, 12, 4)) < 2 * model_macs(module, (12, 12, 4))


def test_resnet20_xla_cross_check():
    from cnnjax.models import create_model

    ratio = xla_flops(create_model("resnet20"), (32, 32, 3)) / (2 * count_macs("resnet20"))
    assert 0.85 < ratio < 1.0  # padded taps left out at 32/16/8 px, BN/ReLU/add flops added


def test_walker_recurses_into_jit_scan_and_cond():
    w = jnp.ones((16, 32))

    @jax.jit
    def inner(x):
        return x @ w  # 16 x 32 MACs per row

    def body(carry, _):
        return carry, inner(carry)

    def fn(x):
        _, ys = jax.lax.scan(body, x, None, length=5)
        branch = jax.lax.cond(x.sum() > 0, lambda v: v @ w, lambda v: jnp.zeros((2, 32)), x)
        return ys, branch

    closed = jax.make_jaxpr(fn)(jnp.ones((2, 16)))
    assert jaxpr_macs(closed) == 5 * 2 * 16 * 32 + 2 * 16 * 32
