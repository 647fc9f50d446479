"""Which examples make up each batch, and each host's share of it (pure functions of the config, numpy only).

Training: the batch of global step s holds positions [o*B, (o+1)*B) of epoch e's permutation (e = s // spe,
o = s % spe; the last partial batch of an epoch is dropped, as in the in-memory pipeline); host p of P reads
rows [p*B/P, (p+1)*B/P) of it. An example's augmentation is keyed by (seed, epoch, example index). So the
examples and pixels of a step depend on nothing but (seed, step): not on the worker count, the host count or
where a run was interrupted.

Evaluation: the split is padded to whole global batches; every host reads the same number of batches, its
rows of each, and padded rows carry id -1 and mask False, so every example is counted exactly once.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SHUFFLE_STREAM, AUGMENT_STREAM = 1, 2


@dataclasses.dataclass(frozen=True)
class TrainPlan:
    num_examples: int
    batch_size: int  # global
    seed: int
    process_index: int = 0
    process_count: int = 1

    @property
    def steps_per_epoch(self) -> int:
        return self.num_examples // self.batch_size

    @property
    def host_batch(self) -> int:
        return self.batch_size // self.process_count

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def order(self, epoch: int) -> np.ndarray:
        """The permutation of the training examples for `epoch`."""
        return np.random.default_rng([self.seed, SHUFFLE_STREAM, epoch]).permutation(self.num_examples)

    def host_rows(self, step: int) -> slice:
        """This host's positions in its epoch's permutation for global step `step`."""
        start = (step % self.steps_per_epoch) * self.batch_size + self.process_index * self.host_batch
        return slice(start, start + self.host_batch)

    def example_rng(self, epoch: int, index: int) -> np.random.Generator:
        """The augmentation randomness of example `index` in `epoch` (independent of worker and host)."""
        return np.random.default_rng([self.seed, AUGMENT_STREAM, epoch, int(index)])


@dataclasses.dataclass(frozen=True)
class EvalPlan:
    num_examples: int
    batch_size: int  # global; a multiple of process_count
    process_index: int = 0
    process_count: int = 1

    @property
    def num_batches(self) -> int:
        return -(-self.num_examples // self.batch_size)

    @property
    def host_batch(self) -> int:
        return self.batch_size // self.process_count

    def host_ids(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """(example ids, with -1 for padding; mask of real rows) of this host's rows of global batch `batch`."""
        ids = batch * self.batch_size + self.process_index * self.host_batch + np.arange(self.host_batch)
        mask = ids < self.num_examples
        return np.where(mask, ids, -1).astype(np.int64), mask
