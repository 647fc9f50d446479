"""A convolutional highway network for CIFAR (Srivastava, Greff & Schmidhuber 2015).

A highway layer keeps its input's shape and mixes a transform with the input through a learned gate:

    H = act(conv3x3_H(x)),  T = sigmoid(conv3x3_T(x) + b_T),  y = H * T + x * (1 - T).

The gate bias b_T starts negative (`gate_bias`, the paper uses -1 to -3, more negative for deeper
nets), so T is small at initialisation and each layer starts close to the identity: signals and
gradients pass through the "carry" path however deep the stack — the idea ResNets later made
parameter-free. The gate values T are sown into the "intermediates" collection
(as "gate_values") for inspection.

The paper gives only depth and size for its CIFAR models (19 layers/2.3M, 32 layers/1.25M parameters),
so this layout is ours: a plain conv3x3 stem (3 -> 32), three stages of `layers_per_stage` highway
layers at 32, 64, 128 channels and 32, 16, 8 pixels, joined by 2x2 max-pooling followed by a plain
conv3x3 that widens the channels, then global average pooling and a linear classifier. Depth =
3 * layers_per_stage + 4 weight layers; the default (5 per stage) is the 19-layer net, 2,032,138
parameters for 10 classes. Like the paper (2015) it has no BatchNorm and its convs have biases;
`batch_norm=True` inserts BN (without conv bias) after each plain/transform conv.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from cnnjax.models.layers import Classifier, Ops, global_avg_pool
from cnnjax.models.window_pool import max_pool
from cnnjax.models.registry import CIFAR_STATS, register_model


def conv_act(ops: Ops, x: jax.Array, features: int, batch_norm: bool, name: str) -> jax.Array:
    """act(conv3x3(x)), with BN instead of the conv bias when `batch_norm`."""
    x = ops.conv(features, (3, 3), padding=1, use_bias=not batch_norm, name=name)(x)
    if batch_norm:
        x = ops.norm(name=f"{name}_bn")(x)
    return ops.act()(x)


class HighwayLayer(nn.Module):
    """y = H(x) * T(x) + x * (1 - T(x)) with 3x3 convolutions for H and T."""

    ops: Ops
    gate_bias: float = -2.0
    batch_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = conv_act(self.ops, x, x.shape[-1], self.batch_norm, name="transform")
        t = self.ops.conv(x.shape[-1], (3, 3), padding=1, use_bias=True,
                          bias_init=nn.initializers.constant(self.gate_bias), name="gate")(x)
        t = nn.sigmoid(t)
        self.sow("intermediates", "gate_values", t)
        return h * t + x * (1.0 - t)


class HighwayNet(Classifier):
    widths: tuple[int, ...] = (32, 64, 128)
    layers_per_stage: int = 5
    gate_bias: float = -2.0
    batch_norm: bool = False

    def applied_options(self) -> frozenset[str]:
        return frozenset({"norm"} if self.batch_norm else ())

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        ops = self.ops(train)
        for stage, width in enumerate(self.widths):
            if stage > 0:
                x = max_pool(x, 2)
            x = conv_act(ops, x, width, self.batch_norm, name=f"plain{stage}")
            for i in range(self.layers_per_stage):
                x = HighwayLayer(ops, self.gate_bias, self.batch_norm, name=f"highway{stage}_{i}")(x)
        return ops.dense(self.num_classes, name="fc")(global_avg_pool(x))


register_model("highway", HighwayNet, family="highway", input_shape=(32, 32, 3), num_classes=10,
               min_input_size=4,
               reference="Srivastava et al. 2015, 'Training Very Deep Networks' (19-layer CIFAR net)",
               **CIFAR_STATS)
