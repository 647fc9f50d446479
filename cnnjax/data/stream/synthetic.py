"""`--config.dataset=synthetic`: random uint8 images and labels generated on the devices inside the step.

No host input at all, so the measured step rate is the devices' alone (the ceiling the input pipeline
has to keep up with). The batch of step s is a pure function of (seed, s).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from cnnjax.data.types import SYNTHETIC

NAME = SYNTHETIC
SYNTHETIC_STREAM = 3


@dataclasses.dataclass(frozen=True)
class SyntheticBatches:
    batch_size: int
    image_shape: tuple[int, int, int]
    num_classes: int
    seed: int

    def __call__(self, step: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(uint8 images, int32 labels) of global step `step`."""
        key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(self.seed), SYNTHETIC_STREAM), step)
        k_images, k_labels = jax.random.split(key)
        images = jax.random.randint(k_images, (self.batch_size, *self.image_shape), 0, 256, jnp.int32)
        labels = jax.random.randint(k_labels, (self.batch_size,), 0, self.num_classes, jnp.int32)
        return images.astype(jnp.uint8), labels
