"""Convolution for training on XLA:CPU: XLA's forward and input gradient, the weight gradient as matmuls.

Why: on CPU, XLA spends most of a small CNN's training step in the weight gradient of its convolutions
(its backprop-filter convolution runs several times slower than the forward), while it multiplies matrices
well. The weight gradient of a convolution is a sum over the kernel taps (i, j) of one matmul each:

    dW[i, j] = sum over (n, h, w) of  x_pad[n, h*s + i*d, w*s + j*d, :]^T  g[n, h, w, :]

(stride s, dilation d; per group for grouped convolutions), where the strided slice of the padded input is
cheap. `conv_general_dilated` is a drop-in for `lax.conv_general_dilated` (flax's `nn.Conv(conv_general_dilated=)`)
that computes the weight gradient that way on CPU, and is XLA's convolution unchanged on every other platform
(`lax.platform_dependent`: the choice is made when the program is lowered, not at run time). Shapes it does not
cover (input dilation, batch groups, other layouts) use XLA's convolution on CPU too.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from jax import lax

NHWC_HWIO = ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))  # flax's 2-D dimension numbers (lhs, rhs, out specs)
# Kernels with more taps (AlexNet's 11x11 stem) keep XLA's weight gradient: one matmul per tap would unroll
# into a program that takes longer to compile than the gradient it saves on the stem's 3 input channels.
MAX_TAPS = 49
Pads = tuple[tuple[int, int], tuple[int, int]]


def _xla(x: jax.Array, w: jax.Array, strides: tuple[int, int], pads: Pads, dilation: tuple[int, int],
         groups: int, precision: Any) -> jax.Array:
    return lax.conv_general_dilated(x, w, strides, pads, rhs_dilation=dilation, feature_group_count=groups,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision)


def weight_gradient(x: jax.Array, g: jax.Array, kernel_shape: Sequence[int], strides: tuple[int, int], pads: Pads,
                    dilation: tuple[int, int], groups: int) -> jax.Array:
    """d(sum(conv(x, W) * g))/dW as one matmul per kernel tap, accumulated in float32 (HWIO, like W)."""
    kh, kw, cin_g, cout = kernel_shape
    n, ho, wo, _ = g.shape
    xp = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)))
    rows = n * ho * wo
    g2 = g.reshape(rows, groups, cout // groups)
    taps = []
    for i in range(kh):
        for j in range(kw):
            top, left = i * dilation[0], j * dilation[1]
            window = lax.slice(xp, (0, top, left, 0),
                               (n, top + strides[0] * (ho - 1) + 1, left + strides[1] * (wo - 1) + 1, xp.shape[3]),
                               (1, strides[0], strides[1], 1))
            tap = jnp.einsum("pgc,pgo->cgo", window.reshape(rows, groups, cin_g), g2,
                             preferred_element_type=jnp.float32)
            taps.append(tap.reshape(cin_g, cout))
    return jnp.stack(taps).reshape(kh, kw, cin_g, cout)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _matmul_weight_grad_conv(x: jax.Array, w: jax.Array, strides: tuple[int, int], pads: Pads,
                             dilation: tuple[int, int], groups: int, precision: Any) -> jax.Array:
    return _xla(x, w, strides, pads, dilation, groups, precision)


def _forward(x, w, strides, pads, dilation, groups, precision):
    return _xla(x, w, strides, pads, dilation, groups, precision), (x, w)


def _backward(strides, pads, dilation, groups, precision, residuals, g):
    x, w = residuals
    _, input_vjp = jax.vjp(lambda x_: _xla(x_, w, strides, pads, dilation, groups, precision), x)
    (dx,) = input_vjp(g)  # XLA's input gradient (pruned when x is not differentiated, e.g. the image)
    dw = weight_gradient(x, g, w.shape, strides, pads, dilation, groups)
    return dx, dw.astype(w.dtype)


_matmul_weight_grad_conv.defvjp(_forward, _backward)


def _explicit_pads(padding: str | Sequence[tuple[int, int]], in_shape: Sequence[int], kernel: Sequence[int],
                   strides: Sequence[int], dilation: Sequence[int]) -> Pads:
    if isinstance(padding, str):
        effective = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
        padding = lax.padtype_to_pads(in_shape, effective, strides, padding)
    (a, b), (c, d) = padding
    return (int(a), int(b)), (int(c), int(d))


def covered(lhs: jax.Array, rhs: jax.Array, dimension_numbers: Any, lhs_dilation: Sequence[int] | None,
            batch_group_count: int, preferred_element_type: Any) -> bool:
    """Whether the matmul weight gradient handles this convolution (else XLA's is used)."""
    if lhs.ndim != 4 or batch_group_count != 1 or preferred_element_type is not None:
        return False
    if rhs.shape[0] * rhs.shape[1] > MAX_TAPS:
        return False
    if lhs_dilation is not None and tuple(lhs_dilation) != (1, 1):
        return False
    if dimension_numbers is None:
        return False
    specs = (tuple(dimension_numbers.lhs_spec), tuple(dimension_numbers.rhs_spec), tuple(dimension_numbers.out_spec)) \
        if isinstance(dimension_numbers, lax.ConvDimensionNumbers) else None
    return specs == NHWC_HWIO or tuple(dimension_numbers) == ("NHWC", "HWIO", "NHWC")


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                         padding: str | Sequence[tuple[int, int]], lhs_dilation: Sequence[int] | None = None,
                         rhs_dilation: Sequence[int] | None = None, dimension_numbers: Any = None,
                         feature_group_count: int = 1, batch_group_count: int = 1, precision: Any = None,
                         preferred_element_type: Any = None) -> jax.Array:
    """`lax.conv_general_dilated` whose weight gradient is computed by matmuls when running on CPU."""
    args = (lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count)
    if not covered(lhs, rhs, dimension_numbers, lhs_dilation, batch_group_count, preferred_element_type):
        return lax.conv_general_dilated(*args, batch_group_count=batch_group_count, precision=precision,
                                        preferred_element_type=preferred_element_type)
    strides = tuple(int(s) for s in window_strides)
    dilation = tuple(int(d) for d in (rhs_dilation or (1, 1)))
    pads = _explicit_pads(padding, lhs.shape[1:3], rhs.shape[:2], strides, dilation)
    fast = functools.partial(_matmul_weight_grad_conv, strides=strides, pads=pads, dilation=dilation,
                             groups=feature_group_count, precision=precision)
    native = functools.partial(_xla, strides=strides, pads=pads, dilation=dilation, groups=feature_group_count,
                               precision=precision)
    return lax.platform_dependent(lhs, rhs, cpu=fast, default=native)
