"""The streaming pipeline's batches: independent of worker count, partitioned over hosts, exact evaluation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.data.stream import loader
from cnnjax.data.stream.feed import StreamSplit
from cnnjax.data.stream.loader import Crops, EvalElement, TrainElement, Workers
from cnnjax.data.stream.plan import EvalPlan, TrainPlan
from cnnjax.evaluate.exact import EvaluationCountError, logits_by_id
from cnnjax.sharding import make_mesh
from tests.data.stream_helpers import MemorySource

CROPS = Crops(crop_size=12, resize_size=14)


def _steps(element, stop: int, workers: Workers, first: int = 0) -> list[dict]:
    iterator = iter(loader.dataset(element, stop, workers, first))
    try:
        return list(iterator)
    finally:
        getattr(iterator, "close", lambda: None)()


def _assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_batches_do_not_depend_on_the_worker_count_or_the_starting_point():
    source = MemorySource(23)
    element = TrainElement(source, TrainPlan(23, 6, seed=3), CROPS)  # 3 steps per epoch, 2 epochs
    reference = _steps(element, 6, Workers(0, 0))
    _assert_same(_steps(element, 6, Workers(0, 2)), reference)
    _assert_same(_steps(element, 6, Workers(2, 1)), reference)  # two worker processes
    _assert_same(_steps(TrainElement(source, TrainPlan(23, 6, seed=3), CROPS), 6, Workers(0, 0), first=4),
                 reference[4:])
    assert [int(b["step"]) for b in reference] == list(range(6))
    epoch0 = np.concatenate([b["id"] for b in reference[:3]])
    assert len(set(epoch0.tolist())) == 18  # 3 full batches, no repeats; the last 5 examples dropped this epoch
    assert not np.array_equal(epoch0, np.concatenate([b["id"] for b in reference[3:]]))  # reshuffled
    assert reference[0]["image"].shape == (6, 12, 12, 3) and reference[0]["image"].dtype == np.uint8
    labels = np.concatenate([b["label"] for b in reference])
    np.testing.assert_array_equal(labels, np.concatenate([b["id"] for b in reference]) % 7)


def test_hosts_read_disjoint_shares_that_make_up_each_global_batch():
    source = MemorySource(20)
    whole = [TrainElement(source, TrainPlan(20, 8, seed=1), CROPS)(s) for s in range(4)]
    hosts = [[TrainElement(source, TrainPlan(20, 8, seed=1, process_index=p, process_count=2), CROPS)(s)
              for s in range(4)] for p in range(2)]
    for s in range(4):
        for key in ("image", "label", "id"):
            np.testing.assert_array_equal(np.concatenate([hosts[0][s][key], hosts[1][s][key]]), whole[s][key])
        assert not set(hosts[0][s]["id"].tolist()) & set(hosts[1][s]["id"].tolist())


@pytest.mark.parametrize("num, batch, hosts", [(13, 4, 2), (10, 5, 1), (3, 8, 4), (16, 4, 2)])
def test_eval_plan_counts_every_example_once(num, batch, hosts):
    plans = [EvalPlan(num, batch, p, hosts) for p in range(hosts)]
    ids = np.concatenate([np.concatenate([plan.host_ids(b)[0][plan.host_ids(b)[1]] for b in range(plan.num_batches)])
                          for plan in plans])
    np.testing.assert_array_equal(np.sort(ids), np.arange(num))
    assert {len(plan.host_ids(0)[0]) for plan in plans} == {batch // hosts}  # the same work on every host


def test_eval_element_pads_with_masked_rows():
    batch = EvalElement(MemorySource(5), EvalPlan(5, 4, 0, 1), Crops(12, 14, ten_crop=True))(1)
    assert batch["image"].shape == (4, 10, 12, 12, 3)
    np.testing.assert_array_equal(batch["id"], [4, -1, -1, -1])
    np.testing.assert_array_equal(batch["mask"], [True, False, False, False])
    assert not batch["image"][1:].any()


def test_stream_split_gives_every_example_once_in_order():
    """4 devices, a batch of 4 for 13 examples: 4 batches, the last with 3 padded rows that are dropped."""
    mesh = make_mesh()
    source = MemorySource(13)

    @jax.jit
    def predict(variables, images):  # "logits": the mean pixel of each image, and a constant column
        mean = images.astype(jnp.float32).mean((1, 2, 3))
        return variables * jnp.stack([mean, jnp.ones_like(mean)], 1)

    split = StreamSplit(source, 13, CROPS, Workers(0, 1))
    logits = split.predict_logits(predict, 2.0, 3, mesh)  # 3 is rounded up to the 4 devices
    from cnnjax.data.stream import ops

    want = [2 * ops.eval_example(source[i]["image"], 12, 14).astype(np.float32).mean() for i in range(13)]
    np.testing.assert_allclose(logits[:, 0], want, rtol=1e-6)
    np.testing.assert_array_equal(logits[:, 1], 2.0)
    np.testing.assert_array_equal(split.labels, np.arange(13) % 7)


def test_logits_by_id_refuses_a_repeated_or_missing_example():
    logits = np.zeros((4, 2), np.float32)
    ids, mask = np.array([0, 1, 1, -1]), np.array([True, True, True, False])
    with pytest.raises(EvaluationCountError, match="1 examples missed, 1 repeated"):
        logits_by_id([(jnp.asarray(logits), jnp.asarray(ids), jnp.asarray(mask))], 3)
