"""Adaptive average pooling and input-size geometry with PyTorch's exact semantics.

torchvision's AlexNet/VGG/SqueezeNet end in `AdaptiveAvgPool2d`, which lets a fixed-size classifier
accept any input the convolutions can shrink to at least 1x1 (a 32x32 VGG input gives 1x1 maps that
are replicated to 7x7). Parity with converted torchvision weights needs its bins exactly:
bin i of an axis of length L pooled to n covers [floor(i*L/n), ceil((i+1)*L/n)), bins may overlap.

`window_out`/`smallest_input` reproduce PyTorch's output-size rule for conv and (ceil-mode) pooling
windows, so each model derives its `min_input_size` from its own layer table instead of a hand count.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

import jax
import jax.numpy as jnp


def adaptive_bins(length: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's AdaptiveAvgPool bins: [floor(i*L/n), ceil((i+1)*L/n)) for i < n."""
    return [((i * length) // out, -(-((i + 1) * length) // out)) for i in range(out)]


def _adaptive_axis(x: jax.Array, axis: int, out: int) -> jax.Array:
    length = x.shape[axis]
    if length == out:
        return x
    if length % out == 0:  # equal, disjoint bins: one reshape + mean
        k = length // out
        shape = x.shape[:axis] + (out, k) + x.shape[axis + 1:]
        return x.reshape(shape).mean(axis=axis + 1)
    slices = [jax.lax.slice_in_dim(x, s, e, axis=axis).mean(axis=axis, keepdims=True)
              for s, e in adaptive_bins(length, out)]
    return jnp.concatenate(slices, axis=axis)


def adaptive_avg_pool(x: jax.Array, output_size: int | tuple[int, int]) -> jax.Array:
    """torch.nn.AdaptiveAvgPool2d on NHWC input. Separable (rows, then columns): the bins are a product."""
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    return _adaptive_axis(_adaptive_axis(x, 1, oh), 2, ow)


class Window(NamedTuple):
    """A conv or pooling window along one spatial axis, for output-size arithmetic."""

    kernel: int
    stride: int = 1
    padding: int = 0
    ceil_mode: bool = False


def window_out(size: int, w: Window) -> int:
    """PyTorch's output length (conv: floor; pool: optionally ceil, last window starting in the input)."""
    span = size + 2 * w.padding - w.kernel + (w.stride - 1 if w.ceil_mode else 0)
    out = span // w.stride + 1  # floor division, like torch's div_rtn
    if w.ceil_mode and (out - 1) * w.stride >= size + w.padding:
        out -= 1
    return out


def output_size(size: int, windows: Iterable[Window]) -> int:
    """Length after a chain of windows; <= 0 once some layer gets an input smaller than it accepts."""
    for w in windows:
        if size < 1:
            return size
        size = window_out(size, w)
    return size


def smallest_input(windows: Iterable[Window], limit: int = 4096) -> int:
    """Smallest input length for which every layer of the chain outputs at least one pixel."""
    windows = tuple(windows)
    for size in range(1, limit + 1):
        if output_size(size, windows) >= 1:
            return size
    raise ValueError(f"no input up to {limit} pixels fits the layer chain")


def check_input_size(x: jax.Array, min_size: int, model: str) -> None:
    """Raises a clear ValueError instead of letting a too-small image reach a zero-sized feature map."""
    h, w = x.shape[1], x.shape[2]
    if min(h, w) < min_size:
        raise ValueError(f"{model} needs inputs of at least {min_size}x{min_size} pixels, got {h}x{w} "
                         "(its convolutions and poolings would shrink the image to nothing)")
