"""Fine-tuning options reach their ops: init_from_skip (a new head), freeze, lr_multipliers, and the
class restriction (class_subset, labels_per_class) that transfer experiments train on."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnjax.config import ConfigError, base_config, validate
from cnnjax.data.splits import load_for_config
from cnnjax.train import experiment, init_from, param_groups
from cnnjax.train.checkpoint import CheckpointError
from cnnjax.train.param_groups import names
from cnnjax.train.state import create_train_state
from cnnjax.train.step import StepConfig, train_step

EPS = float(np.finfo(np.float32).eps)
SECOND = (5, 6, 7, 8, 9)


def _config(**changes):
    c = base_config()
    c.model, c.dataset, c.model_overrides.act = "lenet5", "fashion_mnist", "relu"
    c.num_train_examples, c.validation_size, c.batch_size, c.num_epochs = 200, 0, 32, 1
    c.progress_bar, c.log_every_steps, c.dead_relu_probe = False, 1, 0
    c.update(changes)
    return c


@pytest.fixture(scope="module")
def source(lenet5_workdir):
    """A lenet5 trained for one epoch on classes 0-4 (a 5-class head)."""
    return lenet5_workdir


def _leaves(tree):
    return dict(zip(names(tree), map(np.asarray, jax.tree.leaves(tree))))


def test_classes_are_restricted_relabelled_and_capped():
    data = load_for_config(_config(class_subset=SECOND, labels_per_class=3, num_train_examples=0))
    assert data.meta.num_classes == 5 and data.meta.class_names[0] == "Sandal"
    assert np.bincount(data.train.labels).tolist() == [3] * 5
    assert sorted(np.unique(data.test.labels)) == [0, 1, 2, 3, 4] and len(data.test) == 5000


def test_a_head_pattern_reinitialises_the_head_and_loads_the_body(source):
    exp = experiment.build(_config(class_subset=SECOND, init_from=str(source), init_from_skip="head"))
    fresh = exp.init_state()
    state, report = init_from.apply(fresh, exp, str(source))
    assert report.reinitialised == ["params/Dense_2/bias", "params/Dense_2/kernel"]  # same shape, skipped anyway
    src = _leaves(init_from.load_source(source)[0]["params"])
    got, init = _leaves(state.params), _leaves(fresh.params)
    for name in src:
        np.testing.assert_array_equal(got[name], init[name] if name.startswith("Dense_2/") else src[name])


def test_a_shape_change_outside_the_skip_pattern_is_a_one_line_error(source):
    exp = experiment.build(_config(init_from=str(source), init_from_skip=""))  # 10 classes vs the source's 5
    with pytest.raises(CheckpointError, match="init_from_skip=head") as err:
        init_from.apply(exp.init_state(), exp, str(source))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="top-level names: Conv_0, Conv_1, Dense_0"):
        validate(_config(freeze="layer1/*"))
    for changes, message in [({"lr_multipliers": "head:10"}, "PATTERN=FACTOR"),
                             ({"init_from_skip": "head"}, "set init_from too"),
                             ({"class_subset": (3,)}, "at least 2 distinct"),
                             ({"labels_per_class": -1}, "labels_per_class must be >= 0"),
                             ({"dead_relu_probe": -1}, "dead_relu_probe must be >= 0")]:
        with pytest.raises(ConfigError, match=message) as err:
            validate(_config(**changes))
        assert "\n" not in str(err.value)


def _one_step(config, steps: int = 1):
    exp = experiment.build(config)
    # Jitted init (one compile instead of one per op); the values need not match the loop's op-by-op init.
    state = jax.jit(lambda: create_train_state(exp.model, exp.tx, exp.data.meta.image_shape, config.seed))()
    step = jax.jit(functools.partial(train_step, model=exp.model, tx=exp.tx, schedule=exp.schedule,
                                     cfg=StepConfig.from_config(config, frozen=exp.frozen), axis_name=None))
    images = jnp.asarray(exp.data.train.images[:16], jnp.float32) / 255.0
    labels = jnp.asarray(exp.data.train.labels[:16])
    new = state
    for _ in range(steps):
        new, _ = step(new, images, labels)
    return state, new


def test_frozen_parameters_stay_and_lr_multipliers_scale_their_group_updates_exactly():
    sgd = dict(model="mlp", optimizer="sgd", learning_rate=0.05)
    before, plain = _one_step(_config(**sgd))
    _, tuned = _one_step(_config(**sgd, freeze="Dense_0/kernel", lr_multipliers="head=10,Dense_0/bias=0.5"))
    old, base, got = _leaves(before.params), _leaves(plain.params), _leaves(tuned.params)
    assert sorted(old) == ["Dense_0/bias", "Dense_0/kernel", "Dense_1/bias", "Dense_1/kernel"]
    for name in old:
        factor = {"Dense_0/kernel": 0.0, "Dense_0/bias": 0.5}.get(name, 10.0)  # Dense_1 is the head
        want = factor * (base[name] - old[name])
        assert np.abs(base[name] - old[name]).max() > 0  # every group does train without the options
        # p + u rounds once in each run and the difference once more: a few ulps of the largest weight.
        tol = 4 * EPS * (np.abs(old[name]).max() + np.abs(want).max())
        np.testing.assert_allclose(got[name] - old[name], want, rtol=0, atol=tol, err_msg=name)
    np.testing.assert_array_equal(got["Dense_0/kernel"], old["Dense_0/kernel"])


class _TwoBatchNorms(nn.Module):
    """The smallest network with BatchNorm statistics in two layers (the step is model-agnostic)."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = nn.Dense(4)(x.reshape(x.shape[0], -1))
        x = nn.BatchNorm(use_running_average=not train, name="bn1")(x)
        x = nn.BatchNorm(use_running_average=not train, name="bn2")(nn.Dense(4)(x))
        return nn.Dense(3)(x)


def test_a_frozen_pattern_keeps_batchnorm_statistics_too():
    config = _config(freeze="bn1/*")
    frozen, multipliers = param_groups.from_config(config, head=None)
    tx = param_groups.wrap_optimizer(optax.sgd(0.1), frozen, multipliers)
    model = _TwoBatchNorms()
    state = create_train_state(model, tx, (4, 4, 1), seed=0)
    images = jax.random.normal(jax.random.key(1), (8, 4, 4, 1)) * 3 + 1
    new, _ = jax.jit(functools.partial(train_step, model=model, tx=tx, schedule=lambda step: 0.1,
                                       cfg=StepConfig.from_config(config, frozen=frozen), axis_name=None))(
        state, images, jnp.arange(8) % 3)
    for collection in ("params", "batch_stats"):
        old, got = _leaves(getattr(state, collection)), _leaves(getattr(new, collection))
        for name in old:
            assert np.array_equal(old[name], got[name]) == name.startswith("bn1/"), (collection, name)
