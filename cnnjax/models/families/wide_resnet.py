"""Wide Residual Networks for CIFAR (Zagoruyko & Komodakis 2016), WRN-d-k.

conv3x3(16) - three groups of (d-4)/6 pre-activation basic blocks of 16k/32k/64k channels (stride 1, 2,
2) - BN - act - global average pool - linear. Every block pre-activates its input (the stem has no
BN), projects with a bias-free 1x1 conv where the width changes, and may drop out between its two
convolutions (WRN-28-10-dropout uses 0.3). Layout, bias-free convs and kaiming-normal fan-in init follow
the authors' code (szagoruyko/wide-residual-networks); WRN-28-10 has 36,479,194 parameters (10 classes).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax

from cnnjax.models.blocks import PreActBlock, linear_drop_rate, stage_stride
from cnnjax.models.layers import Classifier, global_avg_pool
from cnnjax.models.registry import CIFAR_STATS, register_model


class WideResNet(Classifier):
    depth: int = 28
    widen_factor: int = 10
    dropout: float = 0.0

    def applied_options(self) -> frozenset[str]:
        return frozenset({"norm", "spatial_dropout", "drop_path"})

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if (self.depth - 4) % 6:
            raise ValueError(f"Wide ResNet depth must be 6n+4, got {self.depth}")
        ops = self.ops(train)
        x = ops.conv(16, (3, 3), padding=1, name="conv0")(x)
        per_group = (self.depth - 4) // 6
        for group, base in enumerate((16, 32, 64)):
            for i in range(per_group):
                x = PreActBlock(ops, base * self.widen_factor, stage_stride(group, i), self.dropout,
                                drop_path=linear_drop_rate(self.drop_path, group * per_group + i, 3 * per_group),
                                name=f"group{group}_{i}")(x)
        x = ops.act()(ops.norm(name="bn_final")(x))
        return ops.dense(self.num_classes, name="fc")(global_avg_pool(x))


register_model("wrn28_10", functools.partial(WideResNet, depth=28, widen_factor=10), family="wide_resnet",
               input_shape=(32, 32, 3), num_classes=10, min_input_size=4,
               reference="Zagoruyko & Komodakis 2016, WRN-28-10", **CIFAR_STATS)
