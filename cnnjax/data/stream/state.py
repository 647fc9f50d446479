"""The training iterator's state in each checkpoint's JSON meta, and resuming from it.

Saved under `meta["input"]`: the step, epoch and position in the epoch (for people), the first element of
the grain dataset and the worker count it ran with, and grain's own iterator state (positions of each
worker). Resuming restores grain's state when the worker count is unchanged; with another worker count
grain's per-worker state does not apply, and the dataset restarts at the checkpoint's step instead (the
same batches: an element is a pure function of its step). Every batch also carries its step, and the feed
refuses a batch of any other step, so a resumed run can neither repeat nor skip examples silently.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cnnjax.errors import CnnjaxError

META_KEY = "input"


class StreamStateError(CnnjaxError, RuntimeError):
    """The input pipeline's position does not match the training step (a checkpoint of another pipeline)."""


@dataclasses.dataclass(frozen=True)
class Resume:
    """Where the grain dataset starts and the grain state to restore into it (None: from its beginning)."""

    first: int
    grain_state: dict[str, Any] | None = None


def checkpoint_entry(step: int, steps_per_epoch: int, first: int, worker_count: int,
                     grain_state: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able record of the iterator after `step` batches were consumed."""
    return {"step": step, "epoch": step // steps_per_epoch, "position": step % steps_per_epoch,
            "first": first, "worker_count": worker_count, "grain": grain_state}


def resume_point(entry: dict[str, Any] | None, step: int, worker_count: int) -> Resume:
    """How to continue at `step` from a checkpoint's entry (None: a fresh run, or no entry saved)."""
    if entry is None:
        return Resume(first=step)
    if entry.get("step") != step:
        raise StreamStateError(f"the checkpoint of step {step} holds the input position of step {entry.get('step')}; "
                               "it was not written by this run's streaming pipeline — use another --workdir")
    if entry.get("worker_count") != worker_count or entry.get("grain") is None:
        return Resume(first=step)
    return Resume(first=int(entry["first"]), grain_state=entry["grain"])


def check_step(batch_step: int, expected: int) -> None:
    if batch_step != expected:
        raise StreamStateError(f"the input pipeline produced the batch of step {batch_step} for step {expected}: "
                               "its saved state does not match this run (repeated or skipped examples refused)")
