"""Data parallelism: the per-device step under `jax.shard_map` over the `data` mesh (`cnnjax.sharding`),
all inside one `jax.jit`.

The global batch is selected, augmented (and mixed: Mixup/CutMix, `cnnjax.data.mixing`) from the replicated
dataset inside the same jitted function, then split along the mesh's `data` axis. Because batch selection,
augmentation and mixing happen on the global batch, a run on 1 device and on N devices sees exactly the same
examples. The labels are integer classes (B,) or, for a mixed batch, soft targets (B, K).
"""

from __future__ import annotations

import collections
import functools
from typing import Any, Callable

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cnnjax.sharding import AXIS
from cnnjax.train.state import TrainState

Batch = tuple[jax.Array, jax.Array]


def data_parallel(step_fn: Callable[..., tuple[TrainState, dict]], mesh: Mesh) -> Callable[..., Any]:
    """Maps `step_fn(state, images, labels)` over the mesh: state replicated, batch split on `data`."""
    return jax.shard_map(step_fn, mesh=mesh, in_specs=(P(), P(AXIS), P(AXIS)), out_specs=(P(), P()),
                         check_vma=False)


def compile_train_step(step_fn: Callable[..., tuple[TrainState, dict]], make_batch: Callable[..., Batch],
                       mesh: Mesh) -> Callable[[TrainState, Any], tuple[TrainState, dict]]:
    """jit(state, data, order) -> (state, metrics): select+augment the global batch, then the sharded step.

    `order` is the epoch's permutation of the training examples (see `TrainBatches.order`).
    """
    sharded = data_parallel(step_fn, mesh)
    batch_sharding = NamedSharding(mesh, P(AXIS))

    @functools.partial(jax.jit, donate_argnums=0)
    def train(state: TrainState, data: Any, order: jax.Array) -> tuple[TrainState, dict]:
        images, labels = make_batch(data, order, state.step)
        images = jax.lax.with_sharding_constraint(images, batch_sharding)
        labels = jax.lax.with_sharding_constraint(labels, batch_sharding)
        return sharded(state, images, labels)

    return train


MAX_STEPS_AHEAD = 8


class DispatchWindow:
    """Bounds how many steps the host dispatches ahead of the devices (blocks on the one `depth` back).

    Why: XLA:CPU admits at most 32 computations in flight per device; a launch beyond that blocks one
    thread of the PjRt client's pool, which has only max(cores, devices) threads ("enough for one
    collective"). On a 2-core host with forced CPU devices the blocked launch takes the thread that a
    peer device's execution of an earlier step needs to reach its all-reduce, so the step's rendezvous
    never completes and XLA aborts after 40 s. Keeping fewer than 32 steps in flight avoids the blocked
    launch on every backend, and 8 steps ahead is still plenty to keep an accelerator busy.
    """

    def __init__(self, depth: int = MAX_STEPS_AHEAD):
        self.depth = depth
        self._pending: collections.deque[Any] = collections.deque()

    def push(self, outputs: Any) -> None:
        """Records a step's outputs; waits for the step `depth` dispatches back to finish."""
        self._pending.append(outputs)
        if len(self._pending) > self.depth:
            jax.block_until_ready(self._pending.popleft())
