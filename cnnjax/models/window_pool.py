"""Max and average pooling: XLA's reduce_window forward, derivatives through k*k strided slices ("taps").

Why: XLA:CPU computes reduce_window's own gradients slowly (max: select_and_scatter; average: a padded
reduce_window): forward + backward of a max-pooling is 4-13x faster, of an overlapping average pooling 1.6x,
when the derivative is written as strided slices of the input, whose transposes are pads that XLA fuses.
The forward stays reduce_window: inside a model XLA fuses a max of slices with the layer before, and that
fused loop ran 4x slower (keras_cnn's inference). Measured by `benchmarks/pool_grad.py` (each pooling alone)
and `benchmarks/train_throughput.py` (whole steps).

Max-pooling's derivative sends each window's gradient to its first maximum in row-major order, which is what
select_and_scatter does (ties included), so gradients are bit-identical to XLA's. Both rules are `custom_jvp`s
(linear in the tangent, so JAX transposes them for reverse mode), and forward mode and higher derivatives
keep working; max-pooling saves one int8 tap index per output for the backward, not a mask per tap.
Average pooling takes the slices' derivative for overlapping windows only (1.6x there); its gradients may
differ from XLA's in the last bit (another summation order).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cnnjax.models.pooling import Window, window_out

Pads = tuple[tuple[int, int], tuple[int, int]]


def resolve_padding(hw: tuple[int, int], window: int, stride: int, padding: str | tuple,
                    ceil_mode: bool = False) -> Pads:
    """(top, bottom), (left, right) pads from "VALID"/"SAME"/explicit pairs; ceil_mode pads bottom/right
    like PyTorch's ceil_mode=True (the last window may overhang, but must start inside the input)."""
    if ceil_mode:
        if padding != "VALID":
            raise ValueError("ceil_mode only combines with VALID padding")
        return tuple((0, _ceil_extra(n, window, stride)) for n in hw)
    if isinstance(padding, str):
        return tuple(lax.padtype_to_pads(hw, (window, window), (stride, stride), padding))
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def _ceil_extra(size: int, window: int, stride: int) -> int:
    out = window_out(size, Window(window, stride, ceil_mode=True))  # PyTorch's rule, shared with the size checks
    return max(0, (out - 1) * stride + window - size)


def _taps(x: jax.Array, window: int, stride: int) -> list[jax.Array]:
    """The window's k*k offsets, each as an output-shaped strided slice of the (padded) input."""
    n, h, w, c = x.shape
    oh, ow = (h - window) // stride + 1, (w - window) // stride + 1
    return [lax.slice(x, (0, a, b, 0), (n, a + (oh - 1) * stride + 1, b + (ow - 1) * stride + 1, c),
                      (1, stride, stride, 1))
            for a in range(window) for b in range(window)]


def _reduce_window(x: jax.Array, window: int, stride: int, init: float, op: Callable) -> jax.Array:
    # A numpy init value keeps it a known monoid (reduce_window_sum/max), which JAX differentiates.
    return lax.reduce_window(x, np.asarray(init, x.dtype), op, (1, window, window, 1), (1, stride, stride, 1), "VALID")


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _window_max(x: jax.Array, window: int, stride: int) -> jax.Array:
    return _reduce_window(x, window, stride, -jnp.inf, lax.max)


@_window_max.defjvp
def _window_max_jvp(window: int, stride: int, primals: tuple, tangents: tuple) -> tuple:
    (x,), (t,) = primals, tangents
    taps = _taps(x, window, stride)
    index = jnp.int8 if len(taps) <= 127 else jnp.int32  # windows up to 11x11 in one byte
    first = jnp.zeros(taps[0].shape, index)  # tap index of the window's first maximum
    best = taps[0]  # a running max fuses with the slices; comparing each tap with reduce_window's output ran
    for i, tap in enumerate(taps[1:], start=1):  # 1.5x slower on AlexNet's 3/2 poolings
        better = tap > best  # strict: an equal later tap does not take over
        best = jnp.where(better, tap, best)
        first = jnp.where(better, index(i), first)
    t_out = functools.reduce(jnp.add, [jnp.where(first == i, tap_t, jnp.zeros((), t.dtype))
                                       for i, tap_t in enumerate(_taps(t, window, stride))])
    return _window_max(x, window, stride), t_out


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _window_total(x: jax.Array, window: int, stride: int) -> jax.Array:
    return _reduce_window(x, window, stride, 0.0, lax.add)


@_window_total.defjvp
def _window_total_jvp(window: int, stride: int, primals: tuple, tangents: tuple) -> tuple:
    (x,), (t,) = primals, tangents
    return _window_total(x, window, stride), functools.reduce(jnp.add, _taps(t, window, stride))


def _padded(x: jax.Array, pads: Pads, value: float) -> jax.Array:
    if pads == ((0, 0), (0, 0)):
        return x
    return jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=value)


def max_pool(x: jax.Array, window: int, stride: int | None = None, padding: str | tuple = "VALID",
             ceil_mode: bool = False) -> jax.Array:
    """Max-pooling of NHWC input; padding counts as -inf, like nn.max_pool and PyTorch."""
    stride = stride or window
    return _max_pool(x, window, stride, resolve_padding(x.shape[1:3], window, stride, padding, ceil_mode))


def avg_pool(x: jax.Array, window: int, stride: int | None = None, padding: str | tuple = "VALID",
             count_include_pad: bool = True) -> jax.Array:
    """Average pooling of NHWC input; padding counts as zeros in the mean unless count_include_pad=False."""
    stride = stride or window
    pads = resolve_padding(x.shape[1:3], window, stride, padding)
    return _avg_pool(x, window, stride, pads, count_include_pad or pads == ((0, 0), (0, 0)))


# Each a jitted function, so that a pooling is one named call in a traced model: `cnnjax summary` shows a
# `(max_pool)` row, not `(pad+custom_jvp_call)`. Inside the model's own jit it is inlined.
@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _max_pool(x: jax.Array, window: int, stride: int, pads: Pads) -> jax.Array:
    return _window_max(_padded(x, pads, -jnp.inf), window, stride)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _avg_pool(x: jax.Array, window: int, stride: int, pads: Pads, count_include_pad: bool) -> jax.Array:
    padded = _padded(x, pads, 0.0)
    # Disjoint windows keep XLA's own derivative: the slices' measured 0.8-1.2x of it on the zoo's 2/2 ones.
    total = (_window_total(padded, window, stride) if stride < window
             else _reduce_window(padded, window, stride, 0.0, lax.add))
    if count_include_pad:
        return total / (window * window)
    inside = _padded(jnp.ones((1, *x.shape[1:3], 1), x.dtype), pads, 0.0)  # constant: XLA folds it
    return total / _reduce_window(inside, window, stride, 0.0, lax.add)
