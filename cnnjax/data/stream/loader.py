"""The grain datasets of the streaming pipeline: one element = this host's share of one global batch.

Elements are indexed by global step (train) or batch number (eval) in a `grain.MapDataset`, so grain's
worker processes (`mp_prefetch`) each produce whole batches and grain's iterator state is just positions.
No JAX here: spawned workers import this module, and should start in a second, not load XLA.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import grain
import numpy as np

from cnnjax.data.stream import ops
from cnnjax.data.stream.plan import EvalPlan, TrainPlan

Batch = dict[str, np.ndarray]


class RecordSource(Protocol):
    """What `cnnjax.data.records.open_source` returns (picklable: it is sent to the worker processes)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, Any]: ...


@dataclasses.dataclass(frozen=True)
class Crops:
    crop_size: int = 224
    resize_size: int = 256
    min_scale: float = 0.08
    flip: bool = True
    ten_crop: bool = False
    channels: int = 3


class TrainElement:
    """Global step -> {"image" (b, S, S, C) uint8, "label" (b,) int32, "id" (b,) int64, "step" ()} of this host."""

    def __init__(self, source: RecordSource, plan: TrainPlan, crops: Crops):
        self.source, self.plan, self.crops = source, plan, crops
        self._order: tuple[int, np.ndarray] | None = None  # the last epoch's permutation (per worker)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, self.plan.order(epoch))
        return self._order[1]

    def __call__(self, step: int) -> Batch:
        step = int(step)
        epoch = self.plan.epoch_of(step)
        ids = self._epoch_order(epoch)[self.plan.host_rows(step)]
        c = self.crops
        images, labels = [], []
        for index in ids:
            record = self.source[int(index)]
            images.append(ops.train_example(record["image"], self.plan.example_rng(epoch, index), c.crop_size,
                                            c.channels, (c.min_scale, 1.0), c.flip))
            labels.append(record["label"])
        return {"image": np.stack(images), "label": np.asarray(labels, np.int32), "id": ids.astype(np.int64),
                "step": np.int64(step)}


class EvalElement:
    """Batch number -> this host's rows {"image" (b, [10,] S, S, C), "label", "id" (-1 = padding), "mask"}."""

    def __init__(self, source: RecordSource, plan: EvalPlan, crops: Crops):
        self.source, self.plan, self.crops = source, plan, crops

    def __call__(self, batch: int) -> Batch:
        ids, mask = self.plan.host_ids(int(batch))
        c = self.crops
        shape = ((10,) if c.ten_crop else ()) + (c.crop_size, c.crop_size, c.channels)
        images = np.zeros((len(ids), *shape), np.uint8)  # padding rows stay black: never decoded
        labels = np.zeros(len(ids), np.int32)
        crop = ops.ten_crop_example if c.ten_crop else ops.eval_example
        for row in np.flatnonzero(mask):
            record = self.source[int(ids[row])]
            images[row] = crop(record["image"], c.crop_size, c.resize_size, c.channels)
            labels[row] = record["label"]
        return {"image": images, "label": labels, "id": ids, "mask": mask}


@dataclasses.dataclass(frozen=True)
class Workers:
    count: int = 0  # worker processes; 0 = in this process (one prefetch thread)
    prefetch: int = 2  # elements buffered per worker


def _flags_parsed() -> None:
    """grain reads absl flags; our entry points parse their own arguments (argparse), so mark absl's parsed."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def dataset(element: TrainElement | EvalElement, stop: int, workers: Workers, first: int = 0) -> grain.IterDataset:
    """Elements first..stop-1 of `element`, made by `workers` and prefetched in order."""
    _flags_parsed()
    ds = grain.MapDataset.range(first, stop).map(element)
    if workers.count == 0:
        return ds.to_iter_dataset(grain.ReadOptions(num_threads=1 if workers.prefetch else 0,
                                                    prefetch_buffer_size=workers.prefetch))
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
    return ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers.count,
                                                       per_worker_buffer_size=max(1, workers.prefetch)))
