"""Layer factories shared by every architecture.

Blocks never construct `nn.Conv`/`nn.BatchNorm`/activations themselves: they receive the partials of
`Ops`, so initialisation, activation, dtype and BatchNorm (momentum, epsilon, cross-device axis) are
configured once, on the model, and can be overridden for any model (`act=`, `init=`, `bn_axis_name=`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnjax.models.activations import Activation, check_activation
from cnnjax.models.initializers import initializer

ModuleFactory = Callable[..., nn.Module]


@dataclasses.dataclass(frozen=True)
class Ops:
    """Partials a block builds its layers from. `norm` already knows train/eval mode."""

    conv: ModuleFactory
    dense: ModuleFactory
    norm: ModuleFactory
    act: ModuleFactory
    dropout: ModuleFactory
    train: bool


class Classifier(nn.Module):
    """Base of every registered model: the options any model accepts.

    Subclasses redefine a field to change its default (e.g. `weight_init: str = "he_fan_out"`), implement
    `__call__(self, x, train=False) -> logits`, and build layers through `self.ops(train)`.
    Auxiliary heads (GoogLeNet, Inception-v3) `self.sow("aux_logits", name, logits)` in training; the
    train step adds them to the loss, evaluation ignores them.
    """

    num_classes: int = 1000
    act: str = "relu"
    act_slope: float = 0.01  # leaky_relu slope / PReLU initial slope
    weight_init: str = "he"
    bn_momentum: float = 0.9  # running = momentum * running + (1 - momentum) * batch (torch 0.1)
    bn_epsilon: float = 1e-5
    bn_axis_name: str | None = None  # mesh axis to synchronise BatchNorm statistics over
    dtype: Any = jnp.float32  # computation dtype; parameters stay float32

    def ops(self, train: bool) -> Ops:
        check_activation(self.act)
        kernel_init = initializer(self.weight_init)
        return Ops(
            conv=functools.partial(nn.Conv, kernel_init=kernel_init, use_bias=False, dtype=self.dtype),
            dense=functools.partial(nn.Dense, kernel_init=kernel_init, dtype=self.dtype),
            norm=functools.partial(
                nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
                epsilon=self.bn_epsilon, axis_name=self.bn_axis_name if train else None,
                dtype=self.dtype),
            act=functools.partial(Activation, kind=self.act, train=train, slope=self.act_slope),
            dropout=functools.partial(nn.Dropout, deterministic=not train),
            train=train,
        )


def flatten(x: jax.Array) -> jax.Array:
    return x.reshape((x.shape[0], -1))


def global_avg_pool(x: jax.Array) -> jax.Array:
    return jnp.mean(x, axis=(1, 2))


def max_pool(x: jax.Array, window: int, stride: int | None = None, padding: str | tuple = "VALID",
             ceil_mode: bool = False) -> jax.Array:
    """Max-pooling; `ceil_mode` pads bottom/right like PyTorch's ceil_mode=True (windows may overhang).

    For the common non-overlapping VALID case it uses crop + reshape + max, whose gradient XLA:CPU
    computes ~4x faster than the reduce-window gradient; the results are identical.
    """
    stride = stride or window
    if ceil_mode:
        if padding != "VALID":
            raise ValueError("ceil_mode only combines with VALID padding")
        padding = tuple((0, _ceil_extra(n, window, stride)) for n in x.shape[1:3])
    elif padding == "VALID" and stride == window:
        n, h, w, c = x.shape
        h, w = h // window, w // window  # VALID drops the trailing rows/columns that fill no window
        x = x[:, : h * window, : w * window]
        return x.reshape(n, h, window, w, window, c).max(axis=(2, 4))
    return nn.max_pool(x, (window, window), (stride, stride), padding)


def _ceil_extra(size: int, window: int, stride: int) -> int:
    out = -(-(size - window) // stride) + 1
    if (out - 1) * stride >= size:  # PyTorch: the last window must start inside the input
        out -= 1
    return max(0, (out - 1) * stride + window - size)


def avg_pool(x: jax.Array, window: int, stride: int | None = None, padding: str | tuple = "VALID",
             count_include_pad: bool = True) -> jax.Array:
    stride = stride or window
    return nn.avg_pool(x, (window, window), (stride, stride), padding, count_include_pad=count_include_pad)
