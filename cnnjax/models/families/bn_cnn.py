"""The BatchNorm CNNs of the Fashion-MNIST recipes: VGG-style stages of conv3x3-BN-ReLU, each closed by a max-pool.

Why a family of its own: on a CPU the cost of a training step is its convolutions' backward passes, so a recipe
that must reach an accuracy within minutes wants the fewest convolutions that still get there, with BatchNorm
(seed 002) so that a large learning rate trains them in few epochs. `bn_cnn` (32-64-128, one convolution per
stage, ~104k parameters) is the fast recipe's network; `bn_cnn6` (two convolutions per stage) is the accurate one's.
Both end with a flattening linear classifier after the last pool (28 -> 14 -> 7 -> 3), optionally behind a hidden
dense layer with dropout.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax

from cnnjax.models.layers import Classifier, flatten, max_pool
from cnnjax.models.pooling import Window, smallest_input
from cnnjax.models.registry import MNIST_STATS, register_model


class BNCNN(Classifier):
    """Stages of (conv3x3 same -> norm -> act) x n, each followed by a 2x2/2 max-pool; [dense -> act -> dropout];
    dense(classes)."""

    stages: tuple[tuple[int, ...], ...] = ((32,), (64,), (128,))
    hidden: int = 0  # width of the hidden dense layer before the classifier; 0 = none
    dropout: float = 0.0  # before the classifier
    weight_init: str = "he"

    def applied_options(self) -> frozenset[str]:
        return frozenset({"norm", "spatial_dropout"})

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        ops = self.ops(train)
        for stage, widths in enumerate(self.stages, start=1):
            for i, width in enumerate(widths, start=1):
                x = ops.conv(width, (3, 3), padding=1, name=f"conv{stage}_{i}")(x)
                x = ops.spatial_dropout()(ops.act()(ops.norm(name=f"bn{stage}_{i}")(x)))
            x = max_pool(x, 2)
        x = flatten(x)
        if self.hidden:
            x = ops.act()(ops.dense(self.hidden, name="fc")(x))
        x = ops.dropout(self.dropout)(x)
        return ops.dense(self.num_classes, name="head")(x)


_VARIANTS = {
    "bn_cnn": dict(stages=((32,), (64,), (128,))),
    "bn_cnn6": dict(stages=((32, 32), (64, 64), (128, 128))),
}

for _name, _fields in _VARIANTS.items():
    register_model(_name, functools.partial(BNCNN, **_fields), family="bn_cnn", input_shape=(28, 28, 1),
                   num_classes=10, min_input_size=smallest_input([Window(2, 2)] * len(_fields["stages"])),
                   reference="the Fashion-MNIST recipes (configs/fashion_mnist/fast.py, accurate.py)",
                   **MNIST_STATS)
