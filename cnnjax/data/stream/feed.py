"""Host batches -> global batch-sharded `jax.Array`s: the training feed and the host-streamed eval split.

Each host holds only its rows of a global batch; `jax.make_array_from_process_local_data` assembles them on
the mesh's `data` axis, so the sharded train and predict programs see one global batch, as with the
in-memory pipeline.
"""

from __future__ import annotations

import pathlib
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cnnjax.data.stream import loader, state
from cnnjax.data.stream.loader import Crops, RecordSource, Workers
from cnnjax.data.stream.plan import EvalPlan
from cnnjax.evaluate.exact import logits_by_id
from cnnjax.sharding import AXIS


def global_array(local: np.ndarray, mesh: Mesh) -> jax.Array:
    """This host's rows of a batch -> the global batch, split over the mesh's `data` axis."""
    shape = (local.shape[0] * jax.process_count(), *local.shape[1:])
    return jax.make_array_from_process_local_data(NamedSharding(mesh, P(AXIS)), local, shape)


class TrainFeed:
    """The batches of steps start, start+1, ... from host workers; its position goes into each checkpoint."""

    def __init__(self, element: loader.TrainElement, total_steps: int, workers: Workers, mesh: Mesh, start: int,
                 entry: dict[str, Any] | None, ids_log: str = ""):
        self.plan, self.workers, self.mesh, self.step = element.plan, workers, mesh, start
        resume = state.resume_point(entry, start, workers.count)
        self._first = resume.first
        self._iterator = iter(loader.dataset(element, total_steps, workers, first=resume.first))
        if resume.grain_state is not None:
            self._iterator.set_state(resume.grain_state)
        self._ids_log = pathlib.Path(f"{ids_log}.{jax.process_index()}") if ids_log else None

    def next(self) -> tuple[jax.Array, jax.Array]:
        """(uint8 images, labels) of the next step, as global arrays."""
        batch = next(self._iterator)
        state.check_step(int(batch["step"]), self.step)
        if self._ids_log is not None:  # debug: the example ids each step trained on (resumability tests)
            with self._ids_log.open("a") as f:
                f.write(" ".join(map(str, [self.step, *batch["id"].tolist()])) + "\n")
        self.step += 1
        return global_array(batch["image"], self.mesh), global_array(batch["label"], self.mesh)

    def checkpoint_meta(self) -> dict[str, Any]:
        """{"input": ...} for the checkpoint of the current step (after the batches consumed so far)."""
        entry = state.checkpoint_entry(self.step, self.plan.steps_per_epoch, self._first, self.workers.count,
                                       self._iterator.get_state())
        return {state.META_KEY: entry}

    def close(self) -> None:
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()


class StreamSplit:
    """An evaluation split read from disk batch by batch, for `exact.predict_logits`.

    `labels` (in example order) is filled by each evaluation pass from the batches it read, so the split's
    labels are never read in a separate pass over the files.
    """

    def __init__(self, source: RecordSource, num_examples: int, crops: Crops, workers: Workers):
        self.source, self.crops, self.workers = source, crops, workers
        self.labels = np.zeros(num_examples, np.int32)

    def __len__(self) -> int:
        return len(self.labels)

    def predict_logits(self, predict_fn: Callable[..., jax.Array], variables: Any, batch_size: int,
                       mesh: Mesh) -> np.ndarray:
        """(N, classes) logits in example order: padded global batches, every example exactly once."""
        unit = mesh.size * jax.process_count() // np.gcd(mesh.size, jax.process_count())
        batch_size += -batch_size % unit
        plan = EvalPlan(len(self), batch_size, jax.process_index(), jax.process_count())
        iterator = iter(loader.dataset(loader.EvalElement(self.source, plan, self.crops), plan.num_batches,
                                       self.workers))
        labels: list[tuple[jax.Array, jax.Array, jax.Array]] = []

        def batches():
            for batch in iterator:
                ids, mask = global_array(batch["id"], mesh), global_array(batch["mask"], mesh)
                labels.append((global_array(batch["label"][:, None], mesh), ids, mask))
                yield predict_fn(variables, global_array(batch["image"], mesh)), ids, mask

        try:
            logits = logits_by_id(batches(), len(self))
        finally:
            getattr(iterator, "close", lambda: None)()
        self.labels[:] = logits_by_id(labels, len(self))[:, 0].astype(np.int32)
        return logits
