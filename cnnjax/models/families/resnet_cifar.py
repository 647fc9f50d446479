"""CIFAR ResNets of He et al. 2016 (section 4.2): 6n+2 layers, 16/32/64 filters, GAP, linear classifier.

Shortcut option "A" (the paper's) subsamples and zero-pads channels, adding no parameters: resnet20 has
269,722 parameters for 10 classes. Option "B" projects with a 1x1 convolution + BN where the shape
changes (272,474). BatchNorm follows every convolution, ReLU after the addition: the basic layout of the
ImageNet ResNets' `blocks.ResidualBlock`, with Flax's automatic child names (Conv_0, BatchNorm_0, ...).
"""

from __future__ import annotations

import functools

import jax

import flax.linen as nn

from cnnjax.models.blocks import ResidualBlock, linear_drop_rate, stage_stride
from cnnjax.models.layers import Classifier, global_avg_pool
from cnnjax.models.registry import CIFAR_STATS, register_model


class CifarResNet(Classifier):
    depth: int = 20
    shortcut: str = "A"
    widths: tuple[int, int, int] = (16, 32, 64)

    def applied_options(self) -> frozenset[str]:
        return frozenset({"norm", "spatial_dropout", "drop_path"})

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if (self.depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {self.depth}")
        ops = self.ops(train)
        x = ops.act()(ops.norm()(ops.conv(self.widths[0], (3, 3), padding=1)(x)))
        index, per_stage = 0, (self.depth - 2) // 6
        for stage, filters in enumerate(self.widths):
            for i in range(per_stage):
                # Flax's numbering of the former CIFAR-only BasicBlock class: saved checkpoints still load.
                x = ResidualBlock(ops, filters, stage_stride(stage, i), shortcut=self.shortcut, auto_names=True,
                                  drop_path=linear_drop_rate(self.drop_path, index, per_stage * len(self.widths)),
                                  name=f"BasicBlock_{index}")(x)
                index += 1
        return ops.dense(self.num_classes)(global_avg_pool(x))


for _depth in (20, 32, 44, 56, 110):
    register_model(f"resnet{_depth}", functools.partial(CifarResNet, depth=_depth), family="resnet_cifar",
                   input_shape=(32, 32, 3), num_classes=10, min_input_size=4,
                   reference="He et al. 2016, sec. 4.2", **CIFAR_STATS)
