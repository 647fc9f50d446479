"""CIFAR ResNets of He et al. 2016 (section 4.2): 6n+2 layers, 16/32/64 filters, GAP, linear classifier.

Shortcut option "A" (the paper's) subsamples and zero-pads channels, adding no parameters: resnet20 has
269,722 parameters for 10 classes. Option "B" projects with a 1x1 convolution + BN where the shape
changes (272,474). BatchNorm follows every convolution, ReLU after the addition.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import flax.linen as nn

from cnnjax.models.layers import Classifier, Ops, global_avg_pool
from cnnjax.models.registry import register_model

CIFAR_STATS = dict(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), crop_pct=1.0)


def shortcut_a(x: jax.Array, filters: int, stride: int) -> jax.Array:
    """Identity with stride-s subsampling and zero channels appended (option A)."""
    if stride > 1:
        x = x[:, ::stride, ::stride, :]
    extra = filters - x.shape[-1]
    if extra > 0:
        x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
    return x


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection; `shortcut` in {"A", "B"} when shapes change."""

    ops: Ops
    filters: int
    stride: int = 1
    shortcut: str = "B"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        ops = self.ops
        y = ops.conv(self.filters, (3, 3), strides=self.stride, padding=1)(x)
        y = ops.act()(ops.norm()(y))
        y = ops.conv(self.filters, (3, 3), padding=1)(y)
        y = ops.norm()(y)
        residual = x
        if self.stride != 1 or x.shape[-1] != self.filters:
            if self.shortcut == "A":
                residual = shortcut_a(x, self.filters, self.stride)
            elif self.shortcut == "B":
                residual = ops.conv(self.filters, (1, 1), strides=self.stride)(x)
                residual = ops.norm()(residual)
            else:
                raise ValueError(f"shortcut must be 'A' or 'B', got {self.shortcut!r}")
        return ops.act()(y + residual)


class CifarResNet(Classifier):
    depth: int = 20
    shortcut: str = "A"
    widths: tuple[int, int, int] = (16, 32, 64)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if (self.depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {self.depth}")
        ops = self.ops(train)
        x = ops.act()(ops.norm()(ops.conv(self.widths[0], (3, 3), padding=1)(x)))
        for stage, filters in enumerate(self.widths):
            for i in range((self.depth - 2) // 6):
                stride = 2 if stage > 0 and i == 0 else 1
                x = BasicBlock(ops, filters, stride, self.shortcut)(x)
        return ops.dense(self.num_classes)(global_avg_pool(x))


def _register(depth: int) -> None:
    def factory(num_classes: int = 10) -> nn.Module:
        return CifarResNet(num_classes=num_classes, depth=depth)

    factory.__name__ = f"resnet{depth}"
    register_model(family="resnet_cifar", input_shape=(32, 32, 3), num_classes=10, min_input_size=4,
                   reference="He et al. 2016, sec. 4.2", **CIFAR_STATS)(factory)


for _depth in (20, 32, 44, 56, 110):
    _register(_depth)
