"""The small classifiers of the lectures: an MLP (seed 003) and the Keras example CNN (seed 000)."""

from __future__ import annotations

import jax

import flax.linen as nn

from cnnjax.models.layers import Classifier, flatten
from cnnjax.models.window_pool import max_pool
from cnnjax.models.registry import MNIST_STATS, register_model


class MLP(Classifier):
    """Flatten -> Dense(hidden) -> act -> Dense(classes)."""

    hidden: tuple[int, ...] = (256,)
    weight_init: str = "glorot"

    def applied_options(self) -> frozenset[str]:
        return frozenset()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        ops = self.ops(train)
        x = flatten(x)
        for width in self.hidden:
            x = ops.act()(ops.dense(width)(x))
        return ops.dense(self.num_classes)(x)


class KerasCNN(Classifier):
    """conv32 (same), conv32 (valid), pool, drop .25, conv64 (same), conv64 (valid), pool, drop .25,
    Dense 512, drop .5, Dense classes — the Keras example of seed 000 (889,834 params on 28x28x1)."""

    weight_init: str = "glorot"  # Keras' default

    def applied_options(self) -> frozenset[str]:
        return frozenset({"spatial_dropout"})

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        ops = self.ops(train)
        conv = lambda f, pad: ops.conv(f, (3, 3), padding=pad, use_bias=True)
        for filters in (32, 64):
            x = ops.spatial_dropout()(ops.act()(conv(filters, "SAME")(x)))
            x = ops.spatial_dropout()(ops.act()(conv(filters, "VALID")(x)))
            x = max_pool(x, 2)
            x = ops.dropout(0.25)(x)
        x = ops.act()(ops.dense(512)(flatten(x)))
        x = ops.dropout(0.5)(x)
        return ops.dense(self.num_classes)(x)


register_model("mlp", MLP, family="mlp", input_shape=(28, 28, 1), num_classes=10, reference="seed 003",
               **MNIST_STATS)
register_model("keras_cnn", KerasCNN, family="keras_cnn", input_shape=(28, 28, 1), num_classes=10,
               min_input_size=12, reference="Keras CIFAR-10 example (seed 000)", **MNIST_STATS)
