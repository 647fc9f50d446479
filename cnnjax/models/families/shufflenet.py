"""ShuffleNet v2 (Ma et al. 2018), torchvision's layout: 2,278,604 parameters for x1.0.

A unit either splits the channels in two and transforms one half (stride 1) or transforms two copies of
the input (stride 2, downsampling); the two halves are concatenated and `channel_shuffle`d so
information crosses between them in the next unit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import flax.linen as nn

from cnnjax.models.blocks import ConvBN
from cnnjax.models.layers import Classifier, Ops, global_avg_pool
from cnnjax.models.window_pool import max_pool
from cnnjax.models.registry import register_model


def channel_shuffle(x: jax.Array, groups: int) -> jax.Array:
    """NHWC channel shuffle: channel g*cpg + j moves to j*groups + g (torchvision's, on the last axis)."""
    *lead, channels = x.shape
    if channels % groups:
        raise ValueError(f"{channels} channels do not split into {groups} groups")
    x = x.reshape(*lead, groups, channels // groups)
    return jnp.swapaxes(x, -1, -2).reshape(*lead, channels)


class ShuffleUnit(nn.Module):
    """Branch 2: pw1 (1x1-BN-act) -> dw (3x3 depthwise-BN) -> pw2 (1x1-BN-act) on half the channels (stride
    1) or on the input (stride 2, where branch 1, dw -> pw, replaces the untouched half); concat, shuffle."""

    ops: Ops
    features: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        ops, half = self.ops, self.features // 2
        if self.stride == 1:
            if x.shape[-1] != self.features:
                raise ValueError(f"a stride-1 unit keeps its width: {x.shape[-1]} != {self.features}")
            left, right = jnp.split(x, 2, axis=-1)
        else:
            left = ConvBN(ops, x.shape[-1], 3, self.stride, depthwise=True, act=False, name="branch1_dw")(x)
            left = ConvBN(ops, half, name="branch1_pw")(left)
            right = x
        right = ConvBN(ops, half, name="branch2_pw1")(right)
        right = ConvBN(ops, half, 3, self.stride, depthwise=True, act=False, name="branch2_dw")(right)
        right = ConvBN(ops, half, name="branch2_pw2")(right)
        return channel_shuffle(jnp.concatenate([left, right], axis=-1), 2)


STAGES_REPEATS: tuple[int, ...] = (4, 8, 4)
X1_0_CHANNELS: tuple[int, ...] = (24, 116, 232, 464, 1024)  # stem, stage2-4, conv5 widths of x1.0


class ShuffleNetV2(Classifier):
    """conv1 (3x3/2) -> maxpool 3x3/2 -> stage2..4 (`stage{s}_{i}`) -> conv5 (1x1) -> GAP -> fc."""

    weight_init: str = "torch_default"  # torchvision leaves PyTorch's default initialisation
    stages_repeats: tuple[int, ...] = STAGES_REPEATS
    stages_out_channels: tuple[int, ...] = X1_0_CHANNELS

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        ops = self.ops(train)
        channels = self.stages_out_channels
        if len(channels) != len(self.stages_repeats) + 2:
            raise ValueError("stages_out_channels needs stem, one per stage, and head widths")
        x = ConvBN(ops, channels[0], 3, 2, name="conv1")(x)
        x = max_pool(x, 3, 2, padding=((1, 1), (1, 1)))
        for stage, (repeats, features) in enumerate(zip(self.stages_repeats, channels[1:-1]), start=2):
            for i in range(repeats):
                x = ShuffleUnit(ops, features, 2 if i == 0 else 1, name=f"stage{stage}_{i}")(x)
        x = ConvBN(ops, channels[-1], name="conv5")(x)
        return ops.dense(self.num_classes, name="fc")(global_avg_pool(x))


register_model("shufflenet_v2_x1_0", ShuffleNetV2, family="shufflenet", input_shape=(224, 224, 3),
               min_input_size=32, torchvision="shufflenet_v2_x1_0",
               reference="Ma et al. 2018; torchvision shufflenetv2.py")
