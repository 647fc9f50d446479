"""On-device input pipeline for datasets that fit in accelerator memory.

The whole split lives on every device as uint8; the batch of global step s is a pure function of
(seed, s): epoch e = s // steps_per_epoch reads a permutation keyed by (seed, e), computed once per epoch
(sorting the whole split every step would cost more than a small model's step); with `class_balance` the
epoch's class-balanced draw of `balance.EpochSampler`, keyed alike. Nothing about the order
depends on the host, on the device count or on where a run was interrupted, which is what makes resumed
runs bit-identical to uninterrupted ones.
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from cnnjax.data import augment, preprocess, resize
from cnnjax.data.balance import EpochSampler
from cnnjax.data.sources import Split
from cnnjax.sharding import replicate_array

SHUFFLE_STREAM, AUGMENT_STREAM = 1, 2


@flax.struct.dataclass
class DeviceSplit:
    images: jax.Array  # (N, H, W, C) uint8, replicated
    labels: jax.Array  # (N,) int32, replicated


def replicate(split: Split, mesh: Mesh) -> DeviceSplit:
    """Places a split on every device of the mesh (each host holds the full split)."""
    return DeviceSplit(replicate_array(split.images, mesh), replicate_array(split.labels.astype(np.int32), mesh))


@dataclasses.dataclass(frozen=True)
class TrainBatches:
    """Which examples and augmentations make up the batch of a global step."""

    num_examples: int
    batch_size: int
    seed: int
    augment_spec: str = ""
    augment_context: augment.AugmentContext | None = None  # what data-dependent ops need (augment.context_for)
    sampler: EpochSampler | None = None  # class_balance: a class-balanced epoch instead of a permutation
    sizes: tuple[int, ...] = ()  # progressive resizing: the image size of each epoch (`resize.sizes_per_epoch`)

    @property
    def epoch_size(self) -> int:
        """Examples an epoch visits: the split's size, or what the class-balanced sampler draws."""
        return self.num_examples if self.sampler is None else self.sampler.epoch_size

    @property
    def steps_per_epoch(self) -> int:  # the last partial batch of an epoch is dropped in training
        return self.epoch_size // self.batch_size

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def size_at(self, step: int) -> int | None:
        """The training image size at `step` under progressive resizing (a static shape), else None."""
        return self.sizes[min(self.epoch_of(step), len(self.sizes) - 1)] if self.sizes else None

    def order(self, epoch: int | jax.Array) -> jax.Array:
        """The training examples `epoch` visits, in order: a permutation, or the sampler's balanced draw."""
        key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(self.seed), SHUFFLE_STREAM), epoch)
        if self.sampler is not None:
            return self.sampler.order(key)
        return jax.random.permutation(key, jnp.arange(self.num_examples, dtype=jnp.int32))

    def indices(self, order: jax.Array, step: jax.Array) -> jax.Array:
        offset = step % self.steps_per_epoch
        return jax.lax.dynamic_slice_in_dim(order, offset * self.batch_size, self.batch_size)

    def __call__(self, data: DeviceSplit, order: jax.Array, step: jax.Array,
                 size: int | None = None) -> tuple[jax.Array, jax.Array]:
        """(uint8 images, labels) of global step `step`, augmented, then resized to `size` (= self.size_at(step),
        static) under progressive resizing; `order` = self.order(epoch of step)."""
        index = self.indices(order, step)
        images = self.augmented(data.images[index], step)
        return (images if size is None else resize.resize_batch(images, size)), data.labels[index]

    def augment_key(self, step: int | jax.Array) -> jax.Array:
        """The key the global batch of `step` is augmented with (split per example by `augment.apply`)."""
        return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(self.seed), AUGMENT_STREAM), step)

    def augmented(self, images: jax.Array, step: int | jax.Array) -> jax.Array:
        """The global batch of `step` through the spec's ops: also what the streaming pipeline's device side
        applies to the host-cropped batch, so both pipelines draw the same keys."""
        ops = augment.parse(self.augment_spec, self.augment_context or augment.AugmentContext())
        return augment.apply(ops, self.augment_key(step), images)


def train_batches(config: ml_collections.ConfigDict, num_train: int, train_images: np.ndarray | None,
                  channels: int, sampler: EpochSampler | None = None, sizes: tuple[int, ...] = ()) -> TrainBatches:
    """The run's TrainBatches with its augmentation context: what data-dependent ops need from the training
    split (fancy PCA's eigenpairs) is computed once here (eval never augments; `train_images` is None for the
    streaming pipeline), and the spec is parsed with it so a data-dependent error surfaces before compiling."""
    context = augment.context_for(config.augment, train_images, channels)
    augment.parse(config.augment, context)
    return TrainBatches(num_train, config.batch_size, config.seed, config.augment, augment_context=context,
                        sampler=sampler, sizes=sizes)


def normalize(images: jax.Array, mean: tuple[float, ...], std: tuple[float, ...], dtype=jnp.float32) -> jax.Array:
    """uint8 [0, 255] -> (x/255 - mean) / std, per channel (`preprocess.apply` of standardize statistics)."""
    return preprocess.apply(preprocess.Statistics("standardize", mean, std), images, dtype)


def eval_batches(num_examples: int, batch_size: int) -> tuple[int, np.ndarray]:
    """Number of padded batches, and the mask of real examples over the padded length (pad + mask)."""
    num_batches = -(-num_examples // batch_size)
    mask = np.arange(num_batches * batch_size) < num_examples
    return num_batches, mask
