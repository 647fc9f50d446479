"""EfficientNet-B0 (Tan & Le 2019), torchvision's layout: 5,288,548 parameters.

MBConv blocks are MobileNet v2's inverted residuals with a squeeze-excitation (squeeze = block input
channels // 4, biases, SiLU inside, sigmoid gate) and stochastic depth on the residual branch, whose rate
grows linearly from 0 to `stochastic_depth_rate` over the blocks (active only in training, drawn from the
'dropout' rng). BatchNorm epsilon is torchvision's 1e-5 (TensorFlow's reference uses 1e-3).
"""

from __future__ import annotations

import jax

import flax.linen as nn

from cnnjax.models.blocks import ConvBN, InvertedResidual
from cnnjax.models.layers import Classifier, global_avg_pool
from cnnjax.models.registry import register_model

# (expand ratio, kernel, first stride, output channels, layers) of the 7 stages of B0 (paper Table 1).
B0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))


class EfficientNet(Classifier):
    """Stem conv3x3/2, MBConv blocks `stage{s}_{i}` (torchvision's features.s.i), 1x1 head, GAP, dense."""

    act: str = "silu"
    weight_init: str = "he_fan_out"  # torchvision: kaiming_normal_(mode="fan_out")
    stages: tuple[tuple[int, int, int, int, int], ...] = B0_STAGES
    stem_features: int = 32
    head_features: int = 1280
    se_divisor: int = 4  # squeeze channels = block input channels // se_divisor
    dropout_rate: float = 0.2
    stochastic_depth_rate: float = 0.2

    def not_applied_reason(self, option: str) -> str:
        if option == "drop_path":  # one stochastic depth per model: the reference recipe's own option
            return "its stochastic depth is stochastic_depth_rate=, torchvision's rule"
        return super().not_applied_reason(option)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        ops = self.ops(train)
        x = ConvBN(ops, self.stem_features, 3, 2, name="stem")(x)
        total, block = sum(stage[-1] for stage in self.stages), 0
        for s, (expand, kernel, stride, features, layers) in enumerate(self.stages, start=1):
            for i in range(layers):
                x = InvertedResidual(
                    ops, features, stride if i == 0 else 1, expand, kernel,
                    se_channels=max(1, x.shape[-1] // self.se_divisor),
                    drop_path=self.stochastic_depth_rate * block / total, name=f"stage{s}_{i}")(x)
                block += 1
        x = ConvBN(ops, self.head_features, name="head")(x)
        x = ops.dropout(self.dropout_rate)(global_avg_pool(x))
        return ops.dense(self.num_classes, name="classifier")(x)


register_model("efficientnet_b0", EfficientNet, family="efficientnet", input_shape=(224, 224, 3),
               min_input_size=32, torchvision="efficientnet_b0",
               reference="Tan & Le 2019; torchvision efficientnet.py")
