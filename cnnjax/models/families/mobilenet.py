"""MobileNet v1 (Howard et al. 2017) and v2 (Sandler et al. 2018).

v1 stacks depthwise-separable convolutions (depthwise 3x3-BN-act, pointwise 1x1-BN-act): 4,231,976
parameters for 1.0-224 (no torchvision twin; padding is PyTorch-style symmetric (k-1)//2). v2 stacks
inverted residuals (1x1 expand, depthwise 3x3, *linear* 1x1 projection) in torchvision's layout:
ReLU6, no conv biases, dropout 0.2 before the classifier, 3,504,872 parameters. Their blocks
(`blocks.ConvBN`, `blocks.InvertedResidual`) are shared with ShuffleNet and EfficientNet.
"""

from __future__ import annotations

import jax

import flax.linen as nn

from cnnjax.models.blocks import ConvBN, InvertedResidual, linear_drop_rate
from cnnjax.models.layers import Classifier, global_avg_pool
from cnnjax.models.registry import register_model

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

    def applied_options(self) -> frozenset[str]:
        return frozenset({"norm", "drop_path"})

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        ops = self.ops(train)
        x = ConvBN(ops, self.stem_features, 3, 2, name="stem")(x)
        index, total = 1, sum(repeats for _, _, repeats, _ in self.setting)
        for expand, features, repeats, stride in self.setting:
            for i in range(repeats):
                x = InvertedResidual(ops, features, stride if i == 0 else 1, expand,
                                     drop_path=linear_drop_rate(self.drop_path, index - 1, total),
                                     name=f"block{index}")(x)
                index += 1
        x = ConvBN(ops, self.head_features, name="head")(x)
        x = ops.dropout(self.dropout_rate)(global_avg_pool(x))
        return ops.dense(self.num_classes, name="classifier")(x)


register_model("mobilenet_v1", MobileNetV1, family="mobilenet", input_shape=(224, 224, 3),
               min_input_size=32, reference="Howard et al. 2017 (MobileNet 1.0-224)")
register_model("mobilenet_v2", MobileNetV2, family="mobilenet", input_shape=(224, 224, 3),
               min_input_size=32, torchvision="mobilenet_v2",
               reference="Sandler et al. 2018; torchvision mobilenetv2.py")
