"""cnnjax.models.cpu_conv: the matmul weight gradient equals XLA's convolution gradient, for the convolution
shapes of the zoo (strides, explicit/SAME/VALID padding, dilation, grouped and depthwise), and the forward and
input gradient are XLA's own.

Tolerance: both gradients are float32 sums of the same P = N*Ho*Wo*Cin_g products per weight, in different
orders. Each is within (P - 1) * u * sum|products| of the exact value (u = 2^-24, the standard bound for a
sum in any order), so they differ by at most twice that; sum|products| is the weight gradient of |x| against
|g|, computed with the same function. The issue's 1e-5 bound on the largest relative difference is checked too.
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


@pytest.mark.parametrize("kernel, strides, padding, dilation, groups, cin, cout", CASES)
def test_weight_gradient_equals_xla_within_the_summation_bound(kernel, strides, padding, dilation, groups, cin, cout):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4, 17, 19, cin)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(*kernel, cin // groups, cout)) * 0.2, jnp.float32)
    (dx_ref, dw_ref), y_ref = _grads(lax.conv_general_dilated, x, w, strides, padding, dilation, groups)
    (dx, dw), y = _grads(cpu_conv.conv_general_dilated, x, w, strides, padding, dilation, groups)
    np.testing.assert_array_equal(y, y_ref)  # XLA's forward
    np.testing.assert_array_equal(dx, dx_ref)  # and XLA's input gradient
    if kernel[0] * kernel[1] > cpu_conv.MAX_TAPS:  # not covered: XLA's weight gradient itself
        np.testing.assert_array_equal(dw, dw_ref)
        return
    # the output gradient of the loss, to bound the weight gradient's sums
    g = jnp.cos(y_ref) - y_ref * jnp.sin(y_ref)
    pads = cpu_conv._explicit_pads(padding, x.shape[1:3], kernel, strides, dilation)
    magnitude = jax.jit(lambda a, b: cpu_conv.weight_gradient(a, b, w.shape, strides, pads, dilation, groups))(
        jnp.abs(x), jnp.abs(g))
    terms = g.shape[0] * g.shape[1] * g.shape[2] * (cin // groups)
    assert np.all(np.abs(np.asarray(dw) - np.asarray(dw_ref)) <= 2 * (terms - 1) * U * np.asarray(magnitude))
    assert float(jnp.max(jnp.abs(dw - dw_ref)) / jnp.max(jnp.abs(dw_ref))) <= 1e-5


def test_the_compiled_cpu_program_has_no_backprop_convolution():
    """On CPU the platform switch is resolved when lowering: the weight gradient is dots, no convolution is left
    (the forward is not needed for the gradient of a linear function of the output)."""
    x, w = jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 8))
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
