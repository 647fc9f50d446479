"""Xception (Chollet 2017) in the Keras layout: 22,855,952 parameters for 1000 classes.

Entry flow: two plain 3x3 convs (32 stride 2, 64; 'valid'), then three down-sampling blocks (128, 256, 728);
middle flow: eight residual blocks of three 728-channel separable convs; exit flow: one down-sampling block
(728 -> 1024), separable convs 1536 and 2048, global average pooling, linear classifier.
A separable conv is a depthwise 3x3 followed by a pointwise 1x1, neither with a bias and with no
non-linearity in between (the paper's finding); BatchNorm follows each one. A down-sampling block ends in a
3x3 stride-2 'same' max-pool, and its shortcut is a strided 1x1 conv + BN. The activation is applied
*before* each separable conv (except where the previous layer already applied it), so every shortcut
carries the pre-activation sum, exactly as Keras builds it. Flax names follow Keras' layer names.

Keras defaults kept: glorot-uniform kernels and BatchNorm epsilon 1e-3. Not in Keras' graph but in the
paper's ImageNet training: dropout 0.5 before the classifier (the `dropout` field; inference is unaffected).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from cnnjax.models.blocks import StochasticDepth, linear_drop_rate
from cnnjax.models.layers import Classifier, Ops, global_avg_pool
from cnnjax.models.window_pool import max_pool
from cnnjax.models.pooling import check_input_size
from cnnjax.models.registry import register_model

ENTRY_BLOCKS = ((2, 128, 128), (3, 256, 256), (4, 728, 728))  # (Keras block number, sepconv1, sepconv2)
MIDDLE_BLOCKS = range(5, 13)
MIDDLE_WIDTH = 728
EXIT_BLOCK = (13, 728, 1024)
MIN_SIZE = 71  # Keras' minimum (the 'valid' stem convs alone would accept 7x7)


class SeparableConv(nn.Module):
    """Keras SeparableConv2D (depth multiplier 1, no bias): depthwise 3x3 then pointwise 1x1."""

    ops: Ops
    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        x = self.ops.conv(channels, (3, 3), padding="SAME", feature_group_count=channels, name="depthwise")(x)
        return self.ops.conv(self.features, (1, 1), name="pointwise")(x)


def sep_bn(ops: Ops, x: jax.Array, features: int, name: str) -> jax.Array:
    """`name` -> `name_bn`, Keras' pairing; called inside a compact method, which owns the layers."""
    return ops.norm(name=f"{name}_bn")(SeparableConv(ops, features, name=name)(x))


class DownBlock(nn.Module):
    """[act] sep-BN, act, sep-BN, max-pool 3/2, plus a 1x1 stride-2 conv-BN shortcut."""

    ops: Ops
    features: tuple[int, int]
    pre_act: bool = True
    drop_path: float = 0.0  # stochastic depth of the separable-conv branch

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        ops = self.ops
        residual = ops.conv(self.features[1], (1, 1), strides=2, padding="SAME", name="residual")(x)
        residual = ops.norm(name="residual_bn")(residual)
        if self.pre_act:
            x = ops.act()(x)
        x = ops.act()(sep_bn(ops, x, self.features[0], "sepconv1"))
        x = sep_bn(ops, x, self.features[1], "sepconv2")
        return StochasticDepth(self.drop_path, not ops.train)(max_pool(x, 3, 2, padding="SAME")) + residual


class MiddleBlock(nn.Module):
    """Three (act, sep-BN) layers with an identity shortcut."""

    ops: Ops
    features: int = MIDDLE_WIDTH
    drop_path: float = 0.0  # stochastic depth of the separable-conv branch

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        residual = x
        for i in range(1, 4):
            x = sep_bn(self.ops, self.ops.act()(x), self.features, f"sepconv{i}")
        return StochasticDepth(self.drop_path, not self.ops.train)(x) + residual


class Xception(Classifier):
    weight_init: str = "glorot"  # Keras' glorot_uniform
    bn_epsilon: float = 1e-3  # Keras' BatchNormalization default
    dropout: float = 0.5

    def applied_options(self) -> frozenset[str]:
        return frozenset({"norm", "drop_path"})

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        check_input_size(x, MIN_SIZE, "xception")
        ops = self.ops(train)
        for i, (features, stride) in enumerate(((32, 2), (64, 1)), start=1):
            x = ops.conv(features, (3, 3), strides=stride, padding="VALID", name=f"block1_conv{i}")(x)
            x = ops.act()(ops.norm(name=f"block1_conv{i}_bn")(x))
        total = len(ENTRY_BLOCKS) + len(MIDDLE_BLOCKS) + 1  # residual blocks 2..13, numbered consecutively

        def rate(block: int) -> float:
            return linear_drop_rate(self.drop_path, block - ENTRY_BLOCKS[0][0], total)

        for block, f1, f2 in ENTRY_BLOCKS:
            x = DownBlock(ops, (f1, f2), pre_act=block > 2, drop_path=rate(block), name=f"block{block}")(x)
        for block in MIDDLE_BLOCKS:
            x = MiddleBlock(ops, drop_path=rate(block), name=f"block{block}")(x)
        block, f1, f2 = EXIT_BLOCK
        x = DownBlock(ops, (f1, f2), drop_path=rate(block), name=f"block{block}")(x)
        for i, features in enumerate((1536, 2048), start=1):
            x = ops.act()(sep_bn(ops, x, features, f"block14_sepconv{i}"))
        x = ops.dropout(self.dropout)(global_avg_pool(x))
        return ops.dense(self.num_classes, name="predictions")(x)


register_model("xception", Xception, family="xception", input_shape=(299, 299, 3), min_input_size=MIN_SIZE,
               mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=0.8975, torchvision=None,
               reference="Chollet 2017, Xception (Keras applications layout)")
