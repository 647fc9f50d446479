"""The BatchNorm CNNs of the Fashion-MNIST recipes: VGG-style stages of conv3x3-BN-ReLU, each closed by a max-pool.

Why a family of its own: on a CPU the cost of a training step is its convolutions, so a recipe that must reach
an accuracy within minutes wants the fewest convolutions that still get there, with BatchNorm (seed 002) so that
a large learning rate trains them in few epochs. Both flatten after the last pool (28 -> 14 -> 7 -> 3).
- `bn_cnn` (48-96-192, one convolution per stage, a hidden dense layer of 256): the fast recipe's network.
  Measured on Fashion-MNIST with its 12-epoch recipe: the hidden layer, 0.4M of its 17M MACs, lifts validation
  top-1 (93.30% at epoch 10, against 92.80% without it); 32-64-128 without it stalls at 92.9% after 16 epochs.
- `bn_cnn6` (32x2-64x2-128x2, linear classifier): the accurate recipe's network.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax

from cnnjax.models.layers import Classifier, flatten
from cnnjax.models.window_pool import max_pool
from cnnjax.models.pooling import Window, smallest_input
from cnnjax.models.registry import MNIST_STATS, register_model


class BNCNN(Classifier):
    """Stages of (conv3x3 same -> norm -> act) x n, each followed by a 2x2/2 max-pool; [dense -> act -> dropout];
    dense(classes)."""

    stages: tuple[tuple[int, ...], ...] = ((48,), (96,), (192,))
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
    "bn_cnn": dict(stages=((48,), (96,), (192,)), hidden=256),
    "bn_cnn6": dict(stages=((32, 32), (64, 64), (128, 128))),
}

for _name, _fields in _VARIANTS.items():
    register_model(_name, functools.partial(BNCNN, **_fields), family="bn_cnn", input_shape=(28, 28, 1),
                   num_classes=10, min_input_size=smallest_input([Window(2, 2)] * len(_fields["stages"])),
                   reference="the Fashion-MNIST recipes (configs/fashion_mnist/fast.py, accurate.py)",
                   **MNIST_STATS)
