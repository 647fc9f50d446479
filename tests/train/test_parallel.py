"""Data parallelism: the same global batches on 1 and on 4 devices give the same parameters."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.config import base_config
from cnnjax.data.pipeline import DeviceSplit, TrainBatches, normalize, replicate
from cnnjax.data.sources import Split
from cnnjax.models import create_model
from cnnjax.train import optim, parallel
from cnnjax.train.state import create_train_state
from cnnjax.train.step import AXIS, StepConfig, train_step

STEPS = 4


def _run(num_devices: int, bn_sync: bool):
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (64, 16, 16, 3), dtype=np.uint8), rng.integers(0, 10, 64).astype(np.int32))
    config = base_config()
    config.optimizer, config.learning_rate = "momentum", 0.05
    batches = TrainBatches(64, 16, seed=0, augment_spec="random_crop(padding=2)|flip_lr")
    schedule = optim.make_schedule(config, batches.steps_per_epoch)
    tx = optim.make_optimizer(config, schedule)
    model = create_model("resnet20", 10, bn_axis_name=AXIS if bn_sync else None)
    mesh = parallel.make_mesh(num_devices)
    state = parallel.replicate_state(create_train_state(model, tx, (16, 16, 3), seed=0), mesh)
    make_batch = lambda data, order, step: (lambda x, y: (normalize(x, (0.5,), (0.25,)), y))(*batches(data, order, step))
    step_fn = functools.partial(train_step, model=model, tx=tx, schedule=schedule, cfg=StepConfig(bn_sync=bn_sync))
    train = parallel.compile_train_step(step_fn, make_batch, mesh)
    data = replicate(split, mesh)
    losses = []
    for _ in range(STEPS):
        state, metrics = train(state, data, batches.order(int(state.step) // batches.steps_per_epoch))
        losses.append(float(metrics["loss"]))
    return jax.device_get(state), losses


@pytest.fixture(scope="module")
def one_device():
    return _run(1, bn_sync=True)


def test_four_devices_match_one_device_with_synchronised_batchnorm(one_device):
    assert jax.device_count() >= 4
    (s1, l1), (s4, l4) = one_device, _run(4, bn_sync=True)
    assert int(s4.step) == STEPS
    np.testing.assert_allclose(l1, l4, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s4.params)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    for a, b in zip(jax.tree.leaves(s1.batch_stats), jax.tree.leaves(s4.batch_stats)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(s1.params),
                jax.tree.leaves(create_train_state(create_model("resnet20"), optim.make_optimizer(
                    base_config(), optim.make_schedule(base_config(), 4)), (16, 16, 3), 0).params)))
    assert moved > 1e-3  # the comparison is not between untouched initial parameters


def test_per_device_batchnorm_differs_from_global_statistics(one_device):
    (s1, _), (s4, _) = one_device, _run(4, bn_sync=False)
    diffs = [float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s4.params))]
    assert max(diffs) > 1e-4  # statistics of 4-example slices are not those of the 16-example batch
