"""L1 / elastic net, the max-norm constraint and gradient accumulation, each through the real optimizer or
train step built from a config (tolerances: float32 epsilon times the number of terms summed)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnjax.config import ConfigError, base_config, validate
from cnnjax.models import create_model
from cnnjax.train import optim
from cnnjax.train.regularizers import incoming_norms, max_norm_project
from cnnjax.train.state import create_train_state
from cnnjax.train.step import StepConfig, train_step

EPS = float(np.finfo(np.float32).eps)


def _config(**kw):
    c = base_config()
    for k, v in kw.items():
        c[k] = v
    return c


PARAMS = {"Dense_0": {"kernel": jnp.array([[1.5, -2.0], [0.0, 0.25]]), "bias": jnp.array([1.0, -1.0])},
          "BatchNorm_0": {"scale": jnp.array([2.0, 3.0]), "bias": jnp.array([-1.0, 1.0])}}


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])  # 0: L1 alone; > 0: the elastic net
def test_l1_adds_lr_times_penalty_times_sign_on_kernels_only(weight_decay):
    lr, l1 = 0.1, 0.01
    config = _config(optimizer="sgd", learning_rate=lr, l1_penalty=l1, weight_decay=weight_decay)
    tx = optim.make_optimizer(config, optim.make_schedule(config, 10))
    zero_grads = jax.tree.map(jnp.zeros_like, PARAMS)
    updates, _ = tx.update(zero_grads, tx.init(PARAMS), PARAMS)
    kernel = np.asarray(PARAMS["Dense_0"]["kernel"], np.float64)
    want = -lr * (l1 * np.sign(kernel) + weight_decay * kernel)
    np.testing.assert_allclose(np.asarray(updates["Dense_0"]["kernel"]), want, rtol=4 * EPS, atol=0)
    assert float(updates["Dense_0"]["kernel"][1, 0]) == 0.0  # sign(0) = 0: a zero weight stays at zero
    others = [updates["Dense_0"]["bias"], updates["BatchNorm_0"]["scale"], updates["BatchNorm_0"]["bias"]]
    assert all(not np.any(np.asarray(u)) for u in others)


def _step_and_state(model_name: str, shape: tuple[int, ...], **config_keys):
    """The real train step a config builds, and its initial state (a pure function of the model and seed)."""
    config = _config(optimizer="sgd", **config_keys)
    validate(config)
    model = _model(model_name)
    schedule = optim.make_schedule(config, 10)
    tx = optim.make_optimizer(config, schedule)
    step = functools.partial(train_step, model=model, tx=tx, schedule=schedule, cfg=StepConfig.from_config(config),
                             axis_name=None)
    state = _initial_state(model_name, shape)
    return step, state.replace(opt_state=tx.init(state.params))


@functools.cache  # once per model, compiled (op by op costs seconds); the optimizer state is set per config
def _initial_state(model_name: str, shape: tuple[int, ...]):
    return jax.jit(create_train_state, static_argnums=(0, 1, 2, 3))(_model(model_name), optax.identity(), shape, 0)


def _model(name: str):
    return create_model(name, 10, **({"hidden": (32,)} if name == "mlp" else {}))  # a narrow MLP: compiles fast


def _max_incoming_norms(params) -> dict[str, float]:
    return {jax.tree_util.keystr(path): float(jnp.max(incoming_norms(leaf)))
            for path, leaf in jax.tree_util.tree_leaves_with_path(params)
            if getattr(path[-1], "key", None) == "kernel"}


def test_max_norm_bounds_every_units_incoming_weights_after_real_steps():
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.normal(size=(16, 28, 28, 1)) * 3, jnp.float32)
    labels = jnp.asarray(rng.integers(0, 10, 16), jnp.int32)
    c = 1.0
    results = {}
    for max_norm in (0.0, c):
        step, state = _step_and_state("mlp", (28, 28, 1), learning_rate=5.0, max_norm=max_norm)
        step = jax.jit(step)
        for _ in range(3):
            state, _ = step(state, images, labels)
        results[max_norm] = state.params
    free, bounded = _max_incoming_norms(results[0.0]), _max_incoming_norms(results[c])
    assert len(bounded) == 2  # both Dense layers
    for name, norm in bounded.items():
        assert norm <= c * (1 + 4 * EPS), (name, norm)
    assert max(free.values()) > 2 * c, free  # without the constraint a unit leaves the ball: it was clipped


def test_max_norm_projects_each_conv_output_channel_over_its_window_and_inputs():
    kernel = jnp.asarray(np.random.default_rng(2).normal(size=(3, 3, 2, 4)), jnp.float32)  # (kh, kw, cin, cout)
    norms = np.sqrt((np.asarray(kernel, np.float64) ** 2).sum(axis=(0, 1, 2)))
    c = float(np.median(norms))
    params = {"Conv_0": {"kernel": kernel, "bias": jnp.full(4, 10.0)}}
    out = max_norm_project(params, c)
    got = np.sqrt((np.asarray(out["Conv_0"]["kernel"], np.float64) ** 2).sum(axis=(0, 1, 2)))
    # Units inside the ball are untouched; the others are scaled onto it (direction kept), 18 terms summed.
    np.testing.assert_allclose(got, np.minimum(norms, c), rtol=18 * EPS)
    inside = norms <= c
    np.testing.assert_array_equal(np.asarray(out["Conv_0"]["kernel"])[..., inside], np.asarray(kernel)[..., inside])
    assert out["Conv_0"]["bias"] is params["Conv_0"]["bias"]  # biases are not constrained


def _mlp_setup(k: int, batch: int = 8):
    return _step_and_state("mlp", (28, 28, 1), learning_rate=0.5, batch_size=batch, grad_accum_steps=k,
                           schedule="inverse_time", inverse_time_decay=1.0)


def test_grad_accumulation_of_two_micro_batches_equals_one_step_on_both():
    rng = np.random.default_rng(1)
    batch = 8
    images = jnp.asarray(rng.normal(size=(batch, 28, 28, 1)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 10, batch), jnp.int32)
    runs = {}
    for k in (1, 2):
        step, state = _mlp_setup(k, batch)
        start = jax.tree.leaves(state.params)
        assert ("scan" in str(jax.make_jaxpr(step)(state, images, labels))) == (k > 1)  # accumulation ran
        lrs = []
        for _ in range(2):
            state, metrics = jax.jit(step)(state, images, labels)
            lrs.append(float(metrics["lr"]))
        runs[k] = state
        assert int(state.step) == 2 and lrs == pytest.approx([0.5, 0.25], rel=EPS)  # schedule: one tick per update
    for p1, p2, p0 in zip(jax.tree.leaves(runs[1].params), jax.tree.leaves(runs[2].params), start):
        # A gradient is a sum of `batch` per-example terms; accumulation re-associates it.
        tol = batch * EPS * float(jnp.max(jnp.abs(p1 - p0))) + EPS * float(jnp.max(jnp.abs(p0)))
        np.testing.assert_allclose(np.asarray(p2), np.asarray(p1), rtol=0, atol=tol)


@pytest.mark.parametrize("keys, message", [
    ({"l1_penalty": -1.0}, "l1_penalty must be >= 0"),
    ({"max_norm": -3.0}, "max_norm must be >= 0"),
    ({"grad_accum_steps": 0}, "grad_accum_steps must be an integer >= 1"),
    ({"grad_accum_steps": 3, "batch_size": 128}, "make batch_size a multiple of it"),
])
def test_regularizer_keys_are_validated(keys, message):
    with pytest.raises(ConfigError, match=message):
        validate(_config(**keys))
