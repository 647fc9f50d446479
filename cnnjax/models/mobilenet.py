"""MobileNet v1 (Howard et al. 2017) and v2 (Sandler et al. 2018), plus the blocks the mobile family shares.

v1 stacks depthwise-separable convolutions (depthwise 3x3-BN-act, pointwise 1x1-BN-act): 4,231,976
parameters for 1.0-224 (no torchvision twin; padding is PyTorch-style symmetric (k-1)//2). v2 stacks
inverted residuals (1x1 expand, depthwise 3x3, *linear* 1x1 projection) in torchvision's layout:
ReLU6, no conv biases, dropout 0.2 before the classifier, 3,504,872 parameters. `InvertedResidual`,
with squeeze-excitation and stochastic depth switched on, is also EfficientNet's MBConv block.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import flax.linen as nn

from cnnjax.models.layers import Classifier, Ops, global_avg_pool
from cnnjax.models.registry import register_model
from cnnjax.models.squeeze_excite import SqueezeExcite


class ConvBN(nn.Module):
    """conv-BN-[act] with padding (k-1)//2: torchvision's Conv2dNormActivation. Children: `conv`, `bn`."""

    ops: Ops
    features: int
    kernel: int = 1
    stride: int = 1
    depthwise: bool = False  # one filter per input channel (feature_group_count = input channels)
    act: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        groups = x.shape[-1] if self.depthwise else 1
        x = self.ops.conv(self.features, (self.kernel, self.kernel), strides=self.stride,
                          padding=(self.kernel - 1) // 2, feature_group_count=groups, name="conv")(x)
        x = self.ops.norm(name="bn")(x)
        return self.ops.act()(x) if self.act else x


class StochasticDepth(nn.Module):
    """Drops a residual branch for whole examples with probability `rate` while training (torchvision's
    "row" mode), scaling the survivors by 1/(1-rate); the identity at evaluation. Uses the 'dropout' rng."""

    rate: float
    deterministic: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.deterministic or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        if keep <= 0.0:
            return jnp.zeros_like(x)
        mask = jax.random.bernoulli(self.make_rng("dropout"), keep, (x.shape[0],) + (1,) * (x.ndim - 1))
        return jnp.where(mask, x / keep, jnp.zeros_like(x))


class InvertedResidual(nn.Module):
    """1x1 expand (skipped when the ratio leaves the width unchanged) -> depthwise kxk -> [SE] -> linear
    1x1 projection, plus the input when stride is 1 and widths match. Children: expand, dw, se, project."""

    ops: Ops
    features: int
    stride: int = 1
    expand_ratio: float = 6.0
    kernel: int = 3
    se_channels: int = 0  # squeeze width of a squeeze-excitation (model act inside, sigmoid gate); 0: none
    drop_path: float = 0.0  # stochastic depth rate of the residual branch

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        ops, width = self.ops, x.shape[-1]
        hidden = int(round(width * self.expand_ratio))
        y = ConvBN(ops, hidden, name="expand")(x) if hidden != width else x
        y = ConvBN(ops, hidden, self.kernel, self.stride, depthwise=True, name="dw")(y)
        if self.se_channels:
            y = SqueezeExcite(ops, squeeze_channels=self.se_channels, name="se")(y)
        y = ConvBN(ops, self.features, act=False, name="project")(y)
        if self.stride == 1 and width == self.features:
            y = StochasticDepth(self.drop_path, deterministic=not ops.train)(y) + x
        return y


# (output channels, stride) of the 13 depthwise-separable layers of MobileNet v1 (paper Table 1).
V1_LAYERS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    *((512, 1),) * 5, (1024, 2), (1024, 1))

# (expansion t, output channels c, repeats n, first stride s) of MobileNet v2 (paper Table 2).
V2_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class MobileNetV1(Classifier):
    """conv3x3/2 (32) then depthwise-separable layers `block{i}_dw`/`block{i}_pw`, GAP, dense."""

    layers: tuple[tuple[int, int], ...] = V1_LAYERS
    stem_features: int = 32
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        ops = self.ops(train)
        x = ConvBN(ops, self.stem_features, 3, 2, name="stem")(x)
        for i, (features, stride) in enumerate(self.layers, start=1):
            x = ConvBN(ops, x.shape[-1], 3, stride, depthwise=True, name=f"block{i}_dw")(x)
            x = ConvBN(ops, features, name=f"block{i}_pw")(x)
        x = ops.dropout(self.dropout_rate)(global_avg_pool(x))
        return ops.dense(self.num_classes, name="classifier")(x)


class MobileNetV2(Classifier):
    """Stem, inverted residuals `block1`..`block17` (torchvision's features.1-17), 1x1 head, GAP, dense."""

    act: str = "relu6"
    weight_init: str = "he_fan_out"  # torchvision: kaiming_normal_(mode="fan_out")
    setting: tuple[tuple[int, int, int, int], ...] = V2_SETTING
    stem_features: int = 32
    head_features: int = 1280
    dropout_rate: float = 0.2

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        ops = self.ops(train)
        x = ConvBN(ops, self.stem_features, 3, 2, name="stem")(x)
        index = 1
        for expand, features, repeats, stride in self.setting:
            for i in range(repeats):
                x = InvertedResidual(ops, features, stride if i == 0 else 1, expand, name=f"block{index}")(x)
                index += 1
        x = ConvBN(ops, self.head_features, name="head")(x)
        x = ops.dropout(self.dropout_rate)(global_avg_pool(x))
        return ops.dense(self.num_classes, name="classifier")(x)


@register_model(family="mobilenet", input_shape=(224, 224, 3), min_input_size=32,
                reference="Howard et al. 2017 (MobileNet 1.0-224)")
def mobilenet_v1(num_classes: int = 1000) -> nn.Module:
    return MobileNetV1(num_classes=num_classes)


@register_model(family="mobilenet", input_shape=(224, 224, 3), min_input_size=32, torchvision="mobilenet_v2",
                reference="Sandler et al. 2018; torchvision mobilenetv2.py")
def mobilenet_v2(num_classes: int = 1000) -> nn.Module:
    return MobileNetV2(num_classes=num_classes)
