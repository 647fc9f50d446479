"""VGG (Simonyan & Zisserman 2015), configurations A/B/D/E = vgg11/13/16/19, in torchvision's layout.

Five stages of 3x3 (padding 1) convolutions with biases, 64-128-256-512-512 filters, each closed by a 2x2/2
max-pool; then a 7x7 adaptive average pool and AlexNet's classifier (`blocks.fc_head`: fc6 4096 -> ReLU
-> dropout -> fc7 4096 -> ReLU -> dropout -> fc8). The `_bn` variants put BatchNorm between each
convolution and its ReLU and keep the convolution biases, as torchvision does (+2 parameters per conv
channel). Weights start with torchvision's He fan-out init.

The adaptive pool makes any input of at least 32x32 work with the 224-sized classifier (at 32x32 the 1x1
final map is replicated 7x7 times). Flattening is NHWC; the converter permutes fc6's rows.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax

from cnnjax.models.blocks import fc_head
from cnnjax.models.layers import Classifier
from cnnjax.models.window_pool import max_pool
from cnnjax.models.pooling import Window, adaptive_avg_pool, check_input_size, smallest_input
from cnnjax.models.registry import register_model

WIDTHS = (64, 128, 256, 512, 512)
# Convolutions per stage; the paper's configurations A, B, D, E.
STAGES: dict[int, tuple[int, ...]] = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3),
                                      19: (2, 2, 4, 4, 4)}
MIN_INPUT = smallest_input([Window(2, 2)] * len(WIDTHS))  # five halvings: 32


def conv_layers(depth: int) -> list[tuple[str, int, bool]]:
    """(Caffe-style name "conv{stage}_{i}", filters, closes its stage) of every convolution, in order."""
    return [(f"conv{s}_{i}", WIDTHS[s - 1], i == n)
            for s, n in enumerate(STAGES[depth], start=1) for i in range(1, n + 1)]


class VGG(Classifier):
    depth: int = 16
    batch_norm: bool = False
    dropout: float = 0.5
    weight_init: str = "he_fan_out"

    def applied_options(self) -> frozenset[str]:
        return frozenset({"spatial_dropout", "norm"} if self.batch_norm else {"spatial_dropout"})

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if self.depth not in STAGES:
            raise ValueError(f"VGG depth must be one of {sorted(STAGES)}, got {self.depth}")
        check_input_size(x, MIN_INPUT, f"vgg{self.depth}")
        ops = self.ops(train)
        for name, filters, pool in conv_layers(self.depth):
            x = ops.conv(filters, (3, 3), padding=1, use_bias=True, name=name)(x)
            if self.batch_norm:
                x = ops.norm(name=name.replace("conv", "bn"))(x)
            x = ops.spatial_dropout()(ops.act()(x))
            if pool:
                x = max_pool(x, 2)
        x = adaptive_avg_pool(x, 7)
        return fc_head(ops, x, self.num_classes, self.dropout)


_CONFIG = {11: "A", 13: "B", 16: "D", 19: "E"}


for _depth in STAGES:
    for _bn in (False, True):
        _name = f"vgg{_depth}{'_bn' if _bn else ''}"
        register_model(_name, functools.partial(VGG, depth=_depth, batch_norm=_bn), family="vgg",
                       input_shape=(224, 224, 3), min_input_size=MIN_INPUT, torchvision=_name,
                       reference=f"Simonyan & Zisserman 2015, config {_CONFIG[_depth]}"
                                 + (" + BatchNorm (torchvision)" if _bn else ""))
