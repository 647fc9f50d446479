"""Data parallelism: the same global batches on 1 and on 4 devices compute the same training run.

Two float32 runs that reduce in different orders (4 per-device sums + pmean vs one sum) round differently;
a BatchNorm ResNet fed 4 examples per device amplifies that noise step by step (seen: 1.4e-3 relative
after 4 steps on one CPU, nothing on another), so a float32 multi-step comparison proves nothing either
way. Hence two checks, each with a tolerance from the arithmetic rather than from one machine's rounding:

- float64, 4 steps: reduction-order noise starts at the float64 unit roundoff u64 = 1.1e-16. Even the
  amplification float32 showed (1.4e-3 / u32 = 2.4e4) keeps it near 3e-12; the bound 1e-9 leaves a margin
  of 300x and is orders of magnitude below what a missing pmean or unsynchronised BatchNorm changes.
- float32, 1 step, against float64: each configuration's update must be float64's up to float32 rounding
  of its longest reduction (n = 16 x 16 x 16 = 4096 terms in a weight gradient and in the BN statistics):
  Higham's gamma_n ~ n * u32 = 2.4e-4, relative, in norm. That bound holds for a smooth function of the
  inputs, so this check uses GELU: with ReLU, rounding can move a pre-activation across the kink and
  change the gradient discontinuously (measured: 2.4e-3 with ReLU, 4.4e-6 with GELU, ELU or tanh).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.config import base_config
from cnnjax.data.pipeline import TrainBatches, normalize, replicate
from cnnjax.data.sources import Split
from cnnjax.models import create_model
from cnnjax import sharding
from cnnjax.train import optim, parallel
from cnnjax.train.state import create_train_state
from cnnjax.sharding import AXIS
from cnnjax.train.step import StepConfig, train_step

STEPS = 4
BATCH, SIZE = 16, 16
U32 = float(np.finfo(np.float32).eps) / 2
FLOAT64_BOUND = 1e-9
FLOAT32_BOUND = BATCH * SIZE * SIZE * U32


def _cast(tree, dtype):
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def _run(num_devices: int, bn_sync: bool, dtype=jnp.float32, steps: int = STEPS, act: str = "relu"):
    """`steps` momentum-SGD steps of a BatchNorm ResNet-20 with augmentation; (initial, final state, losses)."""
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (64, SIZE, SIZE, 3), dtype=np.uint8), rng.integers(0, 10, 64).astype(np.int32))
    config = base_config()
    config.optimizer, config.learning_rate = "momentum", 0.05
    batches = TrainBatches(64, BATCH, seed=0, augment_spec="random_crop(padding=2)|flip_lr")
    schedule = optim.make_schedule(config, batches.steps_per_epoch)
    tx = optim.make_optimizer(config, schedule)
    model = create_model("resnet20", 10, bn_axis_name=AXIS if bn_sync else None, dtype=dtype, act=act)
    mesh = sharding.make_mesh(num_devices)
    initial = _cast(create_train_state(model, tx, (SIZE, SIZE, 3), seed=0), dtype)
    state = sharding.replicate_tree(initial, mesh)

    def make_batch(data, order, step):
        images, labels = batches(data, order, step)
        return normalize(images, (0.5,), (0.25,), dtype), labels

    step_fn = functools.partial(train_step, model=model, tx=tx, schedule=schedule, cfg=StepConfig(bn_sync=bn_sync))
    train = parallel.compile_train_step(step_fn, make_batch, mesh)
    data = replicate(split, mesh)
    losses = []
    for _ in range(steps):
        state, metrics = train(state, data, batches.order(int(state.step) // batches.steps_per_epoch))
        losses.append(float(metrics["loss"]))
    return jax.device_get(initial), jax.device_get(state), losses


def _max_relative(a, b) -> float:
    """Largest |a - b| / max|b| over the leaves of two trees (each leaf scaled by its own magnitude)."""
    return max(float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-30))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _norm_relative(a, b) -> float:
    """||a - b|| / ||b|| over all leaves together."""
    diff = sum(float(np.sum((np.asarray(x, np.float64) - y) ** 2)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    ref = sum(float(np.sum(np.asarray(y, np.float64) ** 2)) for y in jax.tree.leaves(b))
    return (diff / ref) ** 0.5


@pytest.fixture(scope="module")
def float64_runs():
    with jax.enable_x64(True):
        return {n: _run(n, bn_sync=True, dtype=jnp.float64) for n in (1, 4)}


def test_four_devices_match_one_device_in_float64(float64_runs):
    assert jax.device_count() >= 4
    (init, s1, l1), (_, s4, l4) = float64_runs[1], float64_runs[4]
    assert jax.tree.leaves(s4.params)[0].dtype == np.float64 and int(s4.step) == STEPS
    np.testing.assert_allclose(l4, l1, rtol=FLOAT64_BOUND)
    assert _max_relative(s4.params, s1.params) < FLOAT64_BOUND
    assert _max_relative(s4.batch_stats, s1.batch_stats) < FLOAT64_BOUND
    assert _max_relative(s4.opt_state, s1.opt_state) < FLOAT64_BOUND
    assert _max_relative(s1.params, init.params) > 1e-3  # the parameters did move: not a vacuous comparison


@pytest.mark.parametrize("num_devices", [1, 4])
def test_one_float32_step_equals_float64_up_to_rounding(num_devices):
    with jax.enable_x64(True):
        init, ref, ref_losses = _run(1, bn_sync=True, dtype=jnp.float64, steps=1, act="gelu")
    _, state, losses = _run(num_devices, bn_sync=True, steps=1, act="gelu")
    update = jax.tree.map(lambda new, old: np.asarray(new, np.float64) - old, state.params, init.params)
    ref_update = jax.tree.map(lambda new, old: new - old, ref.params, init.params)
    assert _norm_relative(update, ref_update) < FLOAT32_BOUND
    assert _norm_relative(state.batch_stats, ref.batch_stats) < FLOAT32_BOUND
    assert abs(losses[0] - ref_losses[0]) < FLOAT32_BOUND * abs(ref_losses[0])


def test_per_device_batchnorm_differs_from_global_statistics(float64_runs):
    with jax.enable_x64(True):
        _, s4, _ = _run(4, bn_sync=False, dtype=jnp.float64)
    # statistics of 4-example slices are not those of the 16-example batch: far outside FLOAT64_BOUND
    assert _max_relative(s4.params, float64_runs[1][1].params) > 1e-4
