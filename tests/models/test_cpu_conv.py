"""cnnjax.models.cpu_conv: the CPU backward (matmul weight gradient; gradients of a VALID layer through its SAME
twin) equals XLA's convolution gradients, for the convolution shapes of the zoo (strides, explicit/SAME/VALID
padding, dilation, grouped and depthwise), and the forward is XLA's own.

Tolerance: each gradient is a float32 sum of the same P products (plus exact zeros) in another order. A sum of P
terms in any order is within (P - 1) * u * sum|products| of the exact value (u = 2^-24), so the two differ by at
most twice that; sum|products| is the same gradient of |x|, |w| against |g|. P is counted generously: the weight
gradient sums N*Ho*Wo terms (Ho, Wo of the SAME twin where that is larger), the input gradient kh*kw*Cout_g. The
issue's 1e-5 bound on the largest relative difference of the weight gradient is checked too.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from cnnjax.models import cpu_conv

DIMS = lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))  # what flax's nn.Conv passes
U = 2.0 ** -24
# (kernel, strides, padding, dilation, groups, cin, cout): the zoo's kinds of convolution
CASES = [
    ((3, 3), (1, 1), "SAME", (1, 1), 1, 8, 16),  # VGG/ResNet 3x3
    ((3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), 1, 8, 16),  # ResNet downsampling
    ((7, 7), (2, 2), ((3, 3), (3, 3)), (1, 1), 1, 3, 16),  # ResNet stem
    ((11, 11), (4, 4), ((2, 2), (2, 2)), (1, 1), 1, 3, 8),  # AlexNet stem: more taps than MAX_TAPS, XLA's
    ((1, 1), (2, 2), "VALID", (1, 1), 1, 8, 16),  # projection shortcut
    ((5, 5), (1, 1), "VALID", (1, 1), 1, 1, 6),  # LeNet-5
    ((3, 3), (1, 1), "SAME", (1, 1), 8, 8, 8),  # depthwise (MobileNet, Xception)
    ((3, 3), (2, 2), "SAME", (1, 1), 8, 8, 16),  # depthwise, channel multiplier 2, strided
    ((3, 3), (1, 1), "SAME", (1, 1), 4, 8, 16),  # grouped (ResNeXt, AlexNet's two towers, ShuffleNet)
    ((3, 3), (1, 1), "SAME", (2, 2), 1, 8, 8),  # dilated
    ((1, 7), (1, 1), ((0, 0), (3, 3)), (1, 1), 1, 8, 8),  # Inception-v3's factorised 1x7
]


def _grads(conv, x, w, strides, padding, dilation, groups):
    def loss(x, w):
        y = conv(x, w, strides, padding, rhs_dilation=dilation, dimension_numbers=DIMS, feature_group_count=groups)
        return jnp.sum(y * jnp.cos(y)), y
    return jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))(x, w)


def _within_summation_bound(ours, xla, terms, magnitude):
    bound = 2 * (terms - 1) * U * np.asarray(magnitude)
    assert np.all(np.abs(np.asarray(ours) - np.asarray(xla)) <= bound)


@pytest.mark.parametrize("cin_scale", [1, 4])  # x4 channels: the matmul weight gradient's layers too
@pytest.mark.parametrize("kernel, strides, padding, dilation, groups, cin, cout", CASES)
def test_gradients_equal_xla_within_the_summation_bound(kernel, strides, padding, dilation, groups, cin, cout,
                                                        cin_scale):
    cin, cout, groups = cin * cin_scale, cout * cin_scale, groups * cin_scale if groups > 1 else 1
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4, 12, 14, cin)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(*kernel, cin // groups, cout)) * 0.2, jnp.float32)
    (dx_ref, dw_ref), y_ref = _grads(lax.conv_general_dilated, x, w, strides, padding, dilation, groups)
    (dx, dw), y = _grads(cpu_conv.conv_general_dilated, x, w, strides, padding, dilation, groups)
    np.testing.assert_array_equal(y, y_ref)  # XLA's forward
    pads = cpu_conv.explicit_pads(padding, x.shape[1:3], kernel, strides, dilation)
    assert cpu_conv.output_size(x.shape[1:3], kernel, strides, pads, dilation) == y.shape[1:3]
    backward = cpu_conv.choose_backward(x.shape[1:3], w.shape, strides, pads, dilation, groups)
    if kernel[0] * kernel[1] > cpu_conv.MAX_TAPS or backward == cpu_conv.Backward(False, None):
        np.testing.assert_array_equal(dx, dx_ref)  # XLA's own backward
        np.testing.assert_array_equal(dw, dw_ref)
        return
    g = jnp.cos(y_ref) - y_ref * jnp.sin(y_ref)  # the loss's output gradient, to bound the sums with
    abs_grads = jax.jit(lambda a, b, c: jax.vjp(lambda a_, b_: lax.conv_general_dilated(
        a_, b_, strides, padding, rhs_dilation=dilation, dimension_numbers=DIMS, feature_group_count=groups),
        a, b)[1](c))
    dx_magnitude, dw_magnitude = abs_grads(jnp.abs(x), jnp.abs(w), jnp.abs(g))
    pixels = max(y.shape[1] * y.shape[2], x.shape[1] * x.shape[2])
    _within_summation_bound(dx, dx_ref, kernel[0] * kernel[1] * cout // groups, dx_magnitude)
    _within_summation_bound(dw, dw_ref, x.shape[0] * pixels, dw_magnitude)
    assert float(jnp.max(jnp.abs(dw - dw_ref)) / jnp.max(jnp.abs(dw_ref))) <= 1e-5


@pytest.mark.parametrize("kernel, strides, padding, dilation, groups, cin, cout", CASES)
def test_matmul_weight_gradient_equals_xla_within_the_summation_bound(kernel, strides, padding, dilation, groups,
                                                                      cin, cout):
    """Every case through the matmuls directly, whether or not the rule picks them for the layer."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4, 17, 19, cin)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(*kernel, cin // groups, cout)) * 0.2, jnp.float32)
    (_, dw_ref), y_ref = _grads(lax.conv_general_dilated, x, w, strides, padding, dilation, groups)
    pads = cpu_conv.explicit_pads(padding, x.shape[1:3], kernel, strides, dilation)
    g = jnp.cos(y_ref) - y_ref * jnp.sin(y_ref)
    matmul = jax.jit(lambda a, b: cpu_conv.weight_gradient(a, b, w.shape, strides, pads, dilation, groups))
    dw, magnitude = matmul(x, g), matmul(jnp.abs(x), jnp.abs(g))
    _within_summation_bound(dw, dw_ref, g.shape[0] * g.shape[1] * g.shape[2], magnitude)
    assert float(jnp.max(jnp.abs(dw - dw_ref)) / jnp.max(jnp.abs(dw_ref))) <= 1e-5


def test_float64_weight_gradients_are_accumulated_in_float64():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        x, g = jnp.asarray(rng.normal(size=(2, 6, 6, 3))), jnp.asarray(rng.normal(size=(2, 6, 6, 4)))
        dw = cpu_conv.weight_gradient(x, g, (3, 3, 3, 4), (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
        _, vjp = jax.vjp(lambda w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DIMS),
                         jnp.zeros((3, 3, 3, 4)))
        assert dw.dtype == jnp.float64
        np.testing.assert_allclose(dw, vjp(g)[0], rtol=1e-12)


@pytest.mark.parametrize("pads, expected", [
    (((0, 0), (0, 0)), ((1, 1), (1, 1))), (((1, 0), (0, 1)), ((1, 1), (1, 1))), (((1, 1), (1, 1)), None),
    (((2, 2), (2, 2)), None)])
def test_layers_padded_less_than_same_take_the_same_route(pads, expected):
    assert cpu_conv.same_pads((3, 3), (1, 1), (1, 1), pads) == expected
    assert cpu_conv.same_pads((3, 3), (2, 2), (1, 1), ((0, 0), (0, 0))) is None  # strided: XLA's
    assert cpu_conv.same_pads((2, 2), (1, 1), (1, 1), ((0, 0), (0, 0))) is None  # even kernel: no SAME twin


@pytest.mark.parametrize("out_hw, groups, expected", [
    ((7, 7), 1, True), ((16, 16), 1, True), ((17, 16), 1, False), ((28, 28), 1, False), ((7, 7), 8, False)])
def test_the_rule_takes_matmuls_for_small_maps_of_ungrouped_convolutions(out_hw, groups, expected):
    assert cpu_conv.prefers_matmul((3, 3, 32 // groups, 64), out_hw, groups) is expected
    assert not cpu_conv.prefers_matmul((3, 3, 16, 64), (7, 7), 1)  # too few input channels


def test_the_compiled_cpu_program_has_no_backprop_convolution():
    """On CPU the platform switch is resolved when lowering: the weight gradient is dots, no convolution is left
    (the forward is not needed for the gradient of a linear function of the output)."""
    x, w = jnp.ones((2, 8, 8, 32)), jnp.ones((3, 3, 32, 8))
    grad = jax.jit(jax.grad(lambda w, x: jnp.sum(cpu_conv.conv_general_dilated(x, w, (1, 1), "SAME",
                                                                               dimension_numbers=DIMS))))
    hlo = grad.lower(w, x).compile().as_text()
    assert " convolution(" not in hlo and " conditional(" not in hlo and " dot(" in hlo


def test_uncovered_convolutions_are_xla_unchanged():
    """Input dilation (transposed convolutions) is not covered: the same function as lax's, gradient included."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(2, 5, 5, 3)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 3, 4)), jnp.float32)

    def loss(conv, w):
        return jnp.sum(conv(x, w, (1, 1), ((1, 1), (1, 1)), lhs_dilation=(2, 2), dimension_numbers=DIMS) ** 2)
    np.testing.assert_array_equal(jax.grad(lambda w: loss(cpu_conv.conv_general_dilated, w))(w),
                                  jax.grad(lambda w: loss(lax.conv_general_dilated, w))(w))


def _backprop_convolutions(model) -> int:
    """Convolutions in the compiled CPU gradient of a model's training loss."""
    x = jnp.zeros((8, 28, 28, 1))
    variables = model.init(jax.random.key(0), x)

    def loss(params):
        logits = model.apply({**variables, "params": params}, x, train=True, rngs={"dropout": jax.random.key(1)})
        return jnp.sum(logits)
    hlo = jax.jit(jax.grad(loss)).lower(variables["params"]).compile().as_text()
    return hlo.count(" convolution(")


def test_models_take_the_cpu_backward_unless_switched_off():
    """keras_cnn: its two 13x13/11x11 layers' weight gradients become matmuls; cpu_kernels=false is XLA's."""
    from cnnjax.models import create_model

    assert create_model("keras_cnn").cpu_kernels is True
    ours, xla = _backprop_convolutions(create_model("keras_cnn")), _backprop_convolutions(
        create_model("keras_cnn", cpu_kernels=False))
    assert xla - ours == 2


def test_build_model_follows_the_cpu_tuning_switch(monkeypatch):
    from cnnjax.config import base_config
    from cnnjax.train.experiment import build_model

    config = base_config()
    assert build_model(config, 10, (28, 28, 1)).cpu_kernels is True
    monkeypatch.setenv("CNNJAX_CPU_TUNING", "0")
    assert build_model(config, 10, (28, 28, 1)).cpu_kernels is False
    monkeypatch.delenv("CNNJAX_CPU_TUNING")
    config.model_overrides.cpu_kernels = False  # the model option wins over the default
    assert build_model(config, 10, (28, 28, 1)).cpu_kernels is False
