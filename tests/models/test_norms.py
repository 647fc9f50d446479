"""`model_overrides.norm=`: the normalisation layers themselves, and that the chosen one reaches the model.

Model-level checks use a depth-8 CIFAR ResNet (3 residual blocks, a norm after every conv) on 8x8 inputs:
every norm-using code path of the residual families at a fraction of resnet20's compile time.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from cnnjax import sharding
from cnnjax.models import create_model
from cnnjax.models.layers import Classifier
from cnnjax.models.norms import BatchRenorm, GroupNorm, group_count
from cnnjax.train.state import PlateauState, TrainState
from cnnjax.train.step import StepConfig, train_step
from tests.models.zoo_checks import (assert_config_rejects, called_modules, compiled, host_variables, optimizer,
                                     param_count)

EPS32 = float(np.finfo(np.float32).eps)
SHAPE = (8, 8, 3)
SMALL = dict(depth=8)  # resnet20's family at one block per stage


def _inputs(batch: int = 4, seed: int = 0) -> jax.Array:
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(3.0, 2.0, size=(batch, *SHAPE)), jnp.float32)  # far from mean 0 / var 1


def _train_forward(model: nn.Module, variables: dict, x: jax.Array) -> tuple[jax.Array, dict]:
    return model.apply(variables, x, train=True, mutable=["batch_stats"])


@pytest.mark.parametrize("channels, groups, expected", [(64, 32, 32), (24, 32, 24), (48, 32, 24), (7, 4, 1),
                                                         (3, 32, 3)])
def test_group_count_falls_back_to_the_largest_divisor_below_groups(channels, groups, expected):
    assert group_count(channels, groups) == expected


@pytest.mark.parametrize("groups, channels", [(1, 6), (32, 12)])  # layer; group, falling back to 12 groups
def test_group_norm_gives_each_group_of_each_example_mean_0_and_variance_1(groups, channels):
    x = _inputs(3)[..., :1] * jnp.arange(1, channels + 1, dtype=jnp.float32) + jnp.arange(channels)
    norm = GroupNorm(groups=groups, epsilon=0.0)
    y, _ = jax.jit(norm.init_with_output)(jax.random.key(0), x)  # scale 1, bias 0: the normalisation alone
    g = group_count(channels, groups)
    per_group = np.asarray(y, np.float64).reshape(3, -1, g, channels // g).transpose(0, 2, 1, 3).reshape(3, g, -1)
    tol = per_group.shape[-1] * EPS32
    np.testing.assert_allclose(per_group.mean(-1), 0.0, atol=tol)
    np.testing.assert_allclose(per_group.var(-1), 1.0, atol=tol)


def _bn_variables(channels: int, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    return {"params": {"scale": jnp.asarray(rng.uniform(0.5, 2, channels), jnp.float32),
                       "bias": jnp.asarray(rng.normal(size=channels), jnp.float32)},
            "batch_stats": {"mean": jnp.asarray(rng.normal(size=channels), jnp.float32),
                            "var": jnp.asarray(rng.uniform(0.2, 5, channels), jnp.float32)}}


def test_batch_renorm_with_r_max_1_and_d_max_0_is_batch_norm_and_corrects_otherwise():
    """Same outputs and running statistics as nn.BatchNorm in training and evaluation when r and d are
    clipped to 1 and 0; with Ioffe's clips the training output moves towards the running statistics."""
    x, variables = _inputs(), _bn_variables(3)
    bn = nn.BatchNorm(momentum=0.9, epsilon=1e-5)
    renorm = BatchRenorm(momentum=0.9, epsilon=1e-5, r_max=1.0, d_max=0.0)
    tol = x.size * EPS32  # one pass of sums over the batch
    for train in (True, False):
        want, want_stats = bn.apply(variables, x, use_running_average=not train, mutable=["batch_stats"])
        got, got_stats = renorm.clone(use_running_average=not train).apply(variables, x, mutable=["batch_stats"])
        np.testing.assert_allclose(got, want, atol=tol * float(jnp.abs(want).max()))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=tol), got_stats, want_stats)
    corrected, _ = renorm.clone(r_max=3.0, d_max=5.0).apply(variables, x, mutable=["batch_stats"])
    evaluated = bn.apply(variables, x, use_running_average=True)
    trained = bn.apply(variables, x, use_running_average=False, mutable=["batch_stats"])[0]
    # r, d bring the batch-normalised value exactly to the running one where they are not clipped
    assert float(jnp.abs(corrected - evaluated).max()) < float(jnp.abs(trained - evaluated).max())


def test_batch_renorm_synchronised_over_the_mesh_equals_one_device_on_the_global_batch():
    """With bn_axis_name set (bn_sync), 4 devices' renorm statistics, r and d are those of the global batch."""
    mesh = sharding.make_mesh(4)
    layer = create_model("resnet20", norm="batch_renorm", bn_axis_name=sharding.AXIS).ops(train=True).norm()
    x, variables = _inputs(8), _bn_variables(3)
    apply = functools.partial(layer.apply, mutable=["batch_stats"])
    sharded = jax.shard_map(apply, mesh=mesh, in_specs=(P(), P(sharding.AXIS)), out_specs=(P(sharding.AXIS), P()))
    got, got_stats = jax.jit(sharded)(variables, x)
    want, want_stats = layer.clone(axis_name=None).apply(variables, x, mutable=["batch_stats"])
    tol = x.size * EPS32
    np.testing.assert_allclose(got, want, atol=tol * float(jnp.abs(want).max()))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=tol), got_stats, want_stats)


@pytest.mark.parametrize("norm, module, groups", [("batch", nn.BatchNorm, None), ("batch_renorm", BatchRenorm, None),
                                                   ("group", GroupNorm, 4), ("layer", GroupNorm, 1)])
def test_norm_reaches_every_normalisation_of_the_model(norm, module, groups):
    """Every norm layer a forward runs is the chosen one; the parameter count is unchanged (all have a
    per-channel scale and bias), and only the batch norms keep running statistics."""
    ran = [m for m in called_modules("resnet20", 8, norm=norm, norm_groups=4, **SMALL)
           if isinstance(m, (nn.BatchNorm, BatchRenorm, GroupNorm))]
    assert len(ran) == 7 and all(type(m) is module for m in ran)  # stem + 2 per block
    if groups is not None:
        assert {m.groups for m in ran} == {groups}
    assert param_count("resnet20", 8, norm=norm, **SMALL) == param_count("resnet20", 8, **SMALL)
    model = create_model("resnet20", norm=norm, **SMALL)
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), jax.ShapeDtypeStruct((1, *SHAPE), jnp.float32))
    assert ("batch_stats" in shapes) == norm.startswith("batch")


@pytest.mark.parametrize("norm", ["batch", "batch_renorm", "group", "layer"])
def test_only_group_and_layer_norm_keep_the_examples_of_a_batch_apart(norm):
    """In training, one example's output of the model's norm layer (`Ops.norm`) does not depend on the
    other examples with group/layer norm; with batch norm and renorm it does."""
    layer = Classifier(norm=norm, norm_groups=4).ops(train=True).norm()
    x = _inputs()
    other = x.at[1:].set(_inputs(seed=5)[1:])
    variables = layer.init(jax.random.key(0), x)
    a, b = (layer.apply(variables, inputs, mutable=["batch_stats"])[0][0] for inputs in (x, other))
    if norm in ("group", "layer"):
        np.testing.assert_allclose(a, b, atol=x[0].size * EPS32 * float(jnp.abs(a).max()))
    else:
        assert float(jnp.abs(a - b).max()) > 1e-3 * float(jnp.abs(a).max())


def test_norm_options_reach_the_layers():
    """renorm_r_max/renorm_d_max, norm_groups and the model's BatchNorm momentum/epsilon reach every layer."""
    ran = called_modules("resnet20", 8, norm="batch_renorm", renorm_r_max=2.0, renorm_d_max=0.5,
                         bn_momentum=0.7, bn_epsilon=1e-3, **SMALL)
    assert {(m.r_max, m.d_max, m.momentum, m.epsilon) for m in ran if isinstance(m, BatchRenorm)} == {
        (2.0, 0.5, 0.7, 1e-3)}
    ran = called_modules("resnet20", 8, norm="group", norm_groups=8, bn_epsilon=1e-3, **SMALL)
    assert {(m.groups, m.epsilon) for m in ran if isinstance(m, GroupNorm)} == {(8, 1e-3)}


@pytest.mark.parametrize("norm", ["batch_renorm", "group", "layer"])
def test_two_train_steps_and_an_evaluation_with_each_norm(norm):
    """The library's train step (single device, default optimizer) twice, then an evaluation forward, in one
    compiled call: finite, parameters move, renorm's running statistics move, group/layer keep none."""
    model = create_model("resnet20", 10, norm=norm, norm_groups=4, **SMALL)
    x, labels = _inputs(8), jnp.arange(8) % 10
    variables = host_variables(model, x)  # numpy-drawn: no per-parameter sampler to compile
    tx, schedule = optimizer()
    step = functools.partial(train_step, images=x, labels=labels, model=model, tx=tx, schedule=schedule,
                             cfg=StepConfig(), axis_name=None)

    def run(variables: dict):
        state = TrainState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                           batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(variables["params"]),
                           rng=jax.random.PRNGKey(0), plateau=PlateauState.create())
        state, metrics = jax.lax.scan(lambda s, _: step(s), state, length=2)  # one compiled step body
        logits = model.apply({"params": state.params, "batch_stats": state.batch_stats}, x, train=False)
        return state, metrics, logits

    state, metrics, logits = compiled(run, variables)(variables)
    assert int(state.step) == 2 and not np.any(metrics["nonfinite"]) and np.all(np.isfinite(metrics["loss"]))
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(np.any(a != b)), state.params, variables["params"])))
    assert ("batch_stats" in variables) == (norm == "batch_renorm")
    if norm == "batch_renorm":
        moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), state.batch_stats, variables["batch_stats"])
        assert all(jax.tree.leaves(moved))
    assert logits.shape == (8, 10) and bool(jnp.all(jnp.isfinite(logits)))


@pytest.mark.parametrize("model, overrides, message", [
    ("lenet5", dict(norm="group"), "LeNet5 does not apply norm="),
    ("vgg11", dict(norm="layer"), "vgg16_bn"),
    ("resnet20", dict(norm="instance"), "norm must be one of batch, batch_renorm, group, layer"),
    ("resnet20", dict(norm="group", norm_groups=0), "norm_groups is a positive integer"),
    ("resnet20", dict(norm="batch_renorm", renorm_r_max=0.5), "renorm_r_max >= 1"),
])
def test_config_rejects_norms_a_model_cannot_apply(model, overrides, message):
    assert_config_rejects(model, overrides, message)
