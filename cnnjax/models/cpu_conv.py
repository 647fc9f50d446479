"""Convolution for training on XLA:CPU: XLA's forward, a faster backward where one was measured to win.

Why: on CPU a small CNN's training step is mostly the backward pass of its convolutions, and XLA's weight
gradient (a backprop-filter convolution) is its slowest part on two kinds of layer, measured per layer by
`benchmarks/conv_weight_grad.py` (2-core EPYC, jax 0.10, huge-page malloc):

- Small output maps with many channels (<= 16x16 pixels, >= 32 input channels): a convolution's weight gradient
  is a sum over the kernel taps (i, j) of one matmul each,

      dW[i, j] = sum over (n, h, w) of  x_pad[n, h*s + i*d, w*s + j*d, :]^T  g[n, h, w, :]

  (stride s, dilation d), where the strided slice of the padded input is cheap: 1.1-1.8x faster there with two
  threads, 0.96-1.18x on one core.
- Stride-1 convolutions padded less than SAME (VALID: keras_cnn's, LeNet-5's): XLA's gradients of the same
  convolution padded to SAME, with the output gradient zero-padded to match, are the same sums (plus zeros) and
  1.4x faster for the weights, 1.2-1.5x for the input.

`conv_general_dilated` is a drop-in for `lax.conv_general_dilated` (flax's `nn.Conv(conv_general_dilated=)`) that
does this on CPU only, and is XLA's convolution unchanged on every other platform (`lax.platform_dependent`: the
choice is made when the program is lowered, not at run time). Other layers and shapes it does not cover (input
dilation, batch groups, other layouts) are XLA's convolution, gradients included. Being a `custom_vjp`, the CPU
path has reverse-mode derivatives only (training's); `cpu_kernels=false` gives XLA's for forward-mode uses.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
from jax import lax

NHWC_HWIO = ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))  # flax's 2-D dimension numbers (lhs, rhs, out specs)
# Kernels with more taps (AlexNet's 11x11 stem) keep XLA's backward: one matmul per tap would unroll into a
# program that takes longer to compile than the gradient it saves on the stem's 3 input channels.
MAX_TAPS = 49
MAX_OUTPUT_PIXELS = 16 * 16  # larger output maps keep XLA's weight gradient (see `prefers_matmul`)
MIN_MATMUL_CHANNELS = 32  # as do layers with fewer input channels per group
Pads = tuple[tuple[int, int], tuple[int, int]]


def xla_conv(x: jax.Array, w: jax.Array, strides: tuple[int, int], pads: Pads, dilation: tuple[int, int],
             groups: int, precision: Any) -> jax.Array:
    return lax.conv_general_dilated(x, w, strides, pads, rhs_dilation=dilation, feature_group_count=groups,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision)


def weight_gradient(x: jax.Array, g: jax.Array, kernel_shape: Sequence[int], strides: tuple[int, int], pads: Pads,
                    dilation: tuple[int, int], groups: int) -> jax.Array:
    """d(sum(conv(x, W) * g))/dW as one matmul per kernel tap, accumulated in at least float32 (HWIO, like W)."""
    kh, kw, cin_g, cout = kernel_shape
    n, ho, wo, _ = g.shape
    xp = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)))
    rows = n * ho * wo
    accumulate = jnp.promote_types(jnp.result_type(x, g), jnp.float32)  # float32, or float64 where x64 is used
    g2 = g.reshape(rows, groups, cout // groups)
    taps = []
    for i in range(kh):
        for j in range(kw):
            top, left = i * dilation[0], j * dilation[1]
            window = lax.slice(xp, (0, top, left, 0),
                               (n, top + strides[0] * (ho - 1) + 1, left + strides[1] * (wo - 1) + 1, xp.shape[3]),
                               (1, strides[0], strides[1], 1))
            tap = jnp.einsum("pgc,pgo->cgo", window.reshape(rows, groups, cin_g), g2,
                             preferred_element_type=accumulate)
            taps.append(tap.reshape(cin_g, cout))
    return jnp.stack(taps).reshape(kh, kw, cin_g, cout)


class Backward(NamedTuple):
    """How the CPU backward computes a layer's gradients (static: fixed when the program is traced)."""

    matmul: bool  # weight gradient as one matmul per tap (else XLA's)
    same_pads: Pads | None  # XLA's gradients through the SAME-padded convolution (None: as the layer is padded)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6, 7))
def _cpu_conv(x: jax.Array, w: jax.Array, strides: tuple[int, int], pads: Pads, dilation: tuple[int, int],
              groups: int, precision: Any, backward: Backward) -> jax.Array:
    return xla_conv(x, w, strides, pads, dilation, groups, precision)


def _forward(x, w, strides, pads, dilation, groups, precision, backward):
    return xla_conv(x, w, strides, pads, dilation, groups, precision), (x, w)


def _backward(strides, pads, dilation, groups, precision, backward, residuals, g):
    x, w = residuals
    g_xla, pads_xla = g, pads
    if backward.same_pads is not None:  # the SAME convolution's output is this one's, framed by zeros
        (top, bottom), (left, right) = ((p - lo, p - hi) for (p, _), (lo, hi) in zip(backward.same_pads, pads))
        g_xla = jnp.pad(g, ((0, 0), (top, bottom), (left, right), (0, 0)))
        pads_xla = backward.same_pads
    conv = lambda x_, w_: xla_conv(x_, w_, strides, pads_xla, dilation, groups, precision)
    if backward.matmul:
        _, input_vjp = jax.vjp(lambda x_: conv(x_, w), x)
        (dx,) = input_vjp(g_xla)  # XLA's input gradient (pruned when x is not differentiated, e.g. the image)
        dw = weight_gradient(x, g, w.shape, strides, pads, dilation, groups)
    else:
        _, vjp = jax.vjp(conv, x, w)
        dx, dw = vjp(g_xla)
    return dx, dw.astype(w.dtype)


_cpu_conv.defvjp(_forward, _backward)


def same_pads(kernel_hw: Sequence[int], strides: Sequence[int], dilation: Sequence[int], pads: Pads) -> Pads | None:
    """The SAME pads whose gradients serve a stride-1 layer padded less than that (VALID), else None."""
    if tuple(strides) != (1, 1) or tuple(dilation) != (1, 1) or any(k % 2 == 0 for k in kernel_hw):
        return None
    same = tuple(((k - 1) // 2, (k - 1) // 2) for k in kernel_hw)
    if pads == same or any(lo > p or hi > p for (p, _), (lo, hi) in zip(same, pads)):
        return None
    return same  # type: ignore[return-value]


def explicit_pads(padding: str | Sequence[tuple[int, int]], in_shape: Sequence[int], kernel: Sequence[int],
                   strides: Sequence[int], dilation: Sequence[int]) -> Pads:
    if isinstance(padding, str):
        effective = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
        padding = lax.padtype_to_pads(in_shape, effective, strides, padding)
    (a, b), (c, d) = padding
    return (int(a), int(b)), (int(c), int(d))


def output_size(in_hw: Sequence[int], kernel_hw: Sequence[int], strides: Sequence[int], pads: Pads,
                dilation: Sequence[int]) -> tuple[int, int]:
    """(Ho, Wo) of a convolution with explicit padding."""
    return tuple((size + lo + hi - (k - 1) * d - 1) // s + 1  # type: ignore[return-value]
                 for size, k, s, (lo, hi), d in zip(in_hw, kernel_hw, strides, pads, dilation))


def prefers_matmul(kernel_shape: Sequence[int], out_hw: Sequence[int], groups: int) -> bool:
    """Whether the matmul weight gradient is the faster one for this layer (measured, not guessed).

    Measured per layer with `benchmarks/conv_weight_grad.py` (batch 128): the matmuls win on output maps of at most
    16x16 pixels with at least 32 input channels (1.2-1.8x: keras_cnn's 13x13 and 11x11, resnet20's 16x16 and
    8x8, bn_cnn's 14x14 and 7x7 layers), and lose with fewer channels (14x14 with 8 or 16: 0.7-0.9x) or on larger
    maps (32x32 with 16 or 32 channels: 0.4-0.5x; 56x56x64: 0.9x), where XLA's backprop-filter convolution is
    efficient. Grouped and depthwise convolutions keep XLA's: a per-group matmul of few channels is no matmul.
    """
    return groups == 1 and kernel_shape[2] >= MIN_MATMUL_CHANNELS and out_hw[0] * out_hw[1] <= MAX_OUTPUT_PIXELS


def choose_backward(in_hw: Sequence[int], kernel_shape: Sequence[int], strides: tuple[int, int], pads: Pads,
                    dilation: tuple[int, int], groups: int) -> Backward:
    """The CPU backward of a covered layer (XLA's own for kernels of more than MAX_TAPS taps)."""
    if kernel_shape[0] * kernel_shape[1] > MAX_TAPS:
        return Backward(False, None)
    out_hw = output_size(in_hw, kernel_shape[:2], strides, pads, dilation)
    return Backward(prefers_matmul(kernel_shape, out_hw, groups), same_pads(kernel_shape[:2], strides, dilation, pads))


def covered(lhs: jax.Array, rhs: jax.Array, dimension_numbers: Any, lhs_dilation: Sequence[int] | None,
            batch_group_count: int, preferred_element_type: Any) -> bool:
    """Whether `conv_general_dilated` may replace this convolution's backward (else it is XLA's, unchanged)."""
    if lhs.ndim != 4 or batch_group_count != 1 or preferred_element_type is not None:
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
    """`lax.conv_general_dilated` whose backward is `Backward`'s choice for the layer when running on CPU."""
    args = (lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count)
    if not covered(lhs, rhs, dimension_numbers, lhs_dilation, batch_group_count, preferred_element_type):
        return lax.conv_general_dilated(*args, batch_group_count=batch_group_count, precision=precision,
                                        preferred_element_type=preferred_element_type)
    strides = tuple(int(s) for s in window_strides)
    dilation = tuple(int(d) for d in (rhs_dilation or (1, 1)))
    pads = explicit_pads(padding, lhs.shape[1:3], rhs.shape[:2], strides, dilation)
    backward = choose_backward(lhs.shape[1:3], rhs.shape, strides, pads, dilation, feature_group_count)
    if not backward.matmul and backward.same_pads is None:
        return lax.conv_general_dilated(*args, precision=precision)
    fast = functools.partial(_cpu_conv, strides=strides, pads=pads, dilation=dilation, groups=feature_group_count,
                             precision=precision, backward=backward)
    native = functools.partial(xla_conv, strides=strides, pads=pads, dilation=dilation, groups=feature_group_count,
                               precision=precision)
    return lax.platform_dependent(lhs, rhs, cpu=fast, default=native)
