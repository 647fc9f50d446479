"""LeNet-5 (LeCun et al. 1998) in its common modern form.

C1 6@5x5 -> tanh -> S2 avg-pool -> C3 16@5x5 -> tanh -> S4 avg-pool -> C5 120 -> F6 84 -> 10 outputs.
Differences from the paper, kept on purpose: C3 is fully connected to all 6 S2 maps (the paper uses a
sparse connection table), the subsampling layers have no trainable coefficients, and the output is a
linear layer instead of Euclidean RBF units. That gives 61,706 parameters for 10 classes. The lecture's
59,706 counts C3 as (5*5+1)*16, forgetting its 6 input channels: 16*(5*5*6+1) = 2,416, not 416.

28x28 inputs (MNIST-style) are zero-padded by 2 pixels to the 32x32 the network was designed for.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import flax.linen as nn

from cnnjax.models.layers import Classifier, flatten
from cnnjax.models.window_pool import avg_pool
from cnnjax.models.registry import MNIST_STATS, register_model


class LeNet5(Classifier):
    act: str = "tanh"
    weight_init: str = "lecun"  # LeCun's fan-in scaling, matched to tanh

    def applied_options(self) -> frozenset[str]:
        return frozenset({"spatial_dropout"})

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        ops = self.ops(train)
        pad = (32 - x.shape[1]) // 2
        if pad > 0:
            x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        for filters in (6, 16):
            x = ops.spatial_dropout()(ops.act()(ops.conv(filters, (5, 5), padding="VALID", use_bias=True)(x)))
            x = avg_pool(x, 2)
        x = flatten(x)
        for width in (120, 84):
            x = ops.act()(ops.dense(width)(x))
        return ops.dense(self.num_classes)(x)


register_model("lenet5", LeNet5, family="lenet", input_shape=(28, 28, 1), num_classes=10, min_input_size=28,
               reference="LeCun et al. 1998", **MNIST_STATS)
