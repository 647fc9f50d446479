"""The iterator state saved in checkpoints: resuming restores grain's state, or restarts at the step."""

from __future__ import annotations

import json

import pytest

from cnnjax.data.stream import loader, state
from cnnjax.data.stream.loader import Crops, TrainElement, Workers
from cnnjax.data.stream.plan import TrainPlan
from tests.data.stream_helpers import MemorySource


def test_resume_point():
    entry = state.checkpoint_entry(7, 3, first=0, worker_count=2, grain_state={"next_index": 7})
    assert entry["epoch"] == 2 and entry["position"] == 1
    assert state.resume_point(entry, 7, 2) == state.Resume(0, {"next_index": 7})
    assert state.resume_point(entry, 7, 4) == state.Resume(7)  # another worker count: restart at the step
    assert state.resume_point(None, 5, 2) == state.Resume(5)
    with pytest.raises(state.StreamStateError, match="holds the input position of step 7"):
        state.resume_point(entry, 8, 2)
    with pytest.raises(state.StreamStateError, match="batch of step 3 for step 4"):
        state.check_step(3, 4)


def test_restored_grain_state_continues_where_it_stopped():
    element = TrainElement(MemorySource(12), TrainPlan(12, 4, seed=0), Crops(8, 8))
    ds = loader.dataset(element, 9, Workers(0, 2))
    iterator = iter(ds)
    seen = [int(next(iterator)["step"]) for _ in range(4)]
    saved = json.loads(json.dumps(iterator.get_state()))  # it goes through the checkpoint's JSON meta
    resumed = iter(loader.dataset(element, 9, Workers(0, 2)))
    resumed.set_state(saved)
    assert seen + [int(b["step"]) for b in resumed] == list(range(9))
