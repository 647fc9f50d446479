"""`model_overrides.spatial_dropout=` and `model_overrides.drop_path=`: the ops' invariants, and that the
rates reach every layer a forward runs (traced with eval_shape, so the large models cost no compute)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.models import create_model
from cnnjax.models.blocks import PreActBlock, ResidualBlock, StochasticDepth, linear_drop_rate, shortcut_a
from cnnjax.models.layers import Classifier, SpatialDropout
from tests.models.zoo_checks import assert_config_rejects, called_modules, compiled

TINY = dict(stage_sizes=(1, 1, 1, 1))  # ImageNet ResNets with one block per stage
# model, input size, overrides, number of spatial dropouts: after each conv's activation in the plain CNNs,
# after each activation inside a residual branch.
SPATIAL = [("lenet5", 28, {}, 2), ("keras_cnn", 28, {}, 4), ("vgg11", 32, {}, 8), ("vgg11_bn", 32, {}, 8),
           ("resnet20", 8, dict(depth=8), 3), ("wrn28_10", 8, dict(depth=10, widen_factor=1), 3),
           ("resnet50", 32, TINY, 8)]
# model, input size, overrides, residual blocks (each with a stochastic depth)
RESIDUAL = [("resnet20", 8, dict(depth=8), 3), ("wrn28_10", 8, dict(depth=10, widen_factor=1), 3),
            ("resnet18", 32, TINY, 4), ("resnet50", 32, TINY, 4), ("preact_resnet18", 32, TINY, 4),
            ("xception", 71, {}, 12)]
V2_SMALL = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2))  # MobileNet v2's first stages, 2 of 5 blocks residual


def _positive(shape: tuple[int, ...], seed: int = 0) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).uniform(0.5, 2.0, shape), jnp.float32)


def _spatial_dropouts(model: str, size: int, train: bool, **overrides) -> list[SpatialDropout]:
    return [m for m in called_modules(model, size, train, **overrides) if isinstance(m, SpatialDropout)]


def test_spatial_dropout_drops_whole_feature_maps_in_training_only():
    """The model's `Ops.spatial_dropout`: each (example, channel) map is all zero or all scaled by 1/(1-p)."""
    p, x = 0.5, _positive((8, 5, 5, 16))
    net = create_model("lenet5", spatial_dropout=p)
    y = np.asarray(net.ops(train=True).spatial_dropout().apply({}, x, rngs={"dropout": jax.random.key(0)}))
    dropped = np.all(y == 0, axis=(1, 2))
    kept = np.all(y == np.asarray(x) / (1 - p), axis=(1, 2))
    assert np.all(dropped | kept) and 0 < dropped.mean() < 1
    assert net.ops(train=False).spatial_dropout().apply({}, x) is x


@pytest.mark.parametrize("model, size, overrides, hooks", SPATIAL)
def test_spatial_dropout_reaches_every_hook_in_training(model, size, overrides, hooks):
    train = _spatial_dropouts(model, size, True, spatial_dropout=0.2, **overrides)
    assert len(train) == hooks and all(m.rate == 0.2 and m.broadcast_dims == (1, 2) and not m.deterministic
                                       for m in train)
    assert all(m.deterministic for m in _spatial_dropouts(model, size, False, spatial_dropout=0.2, **overrides))


@pytest.mark.parametrize("model, size, overrides, names", [
    ("keras_cnn", 28, {}, ["Dropout_0", "Dropout_1", "Dropout_2"]),
    ("vgg11", 32, {}, ["Dropout_0", "Dropout_1"]),
    ("wrn28_10", 8, dict(depth=10, widen_factor=1, dropout=0.3), ["Dropout_0"] * 3)])
def test_spatial_dropout_leaves_the_models_own_dropout_masks_as_they_were(model, size, overrides, names):
    """The model's Dropout layers keep their automatic names, hence their 'dropout' rng streams: a run
    without spatial_dropout draws the same masks as before the option existed, and one with it only adds."""
    for rate in (0.0, 0.2):
        ran = called_modules(model, size, spatial_dropout=rate, **overrides)
        assert [m.name for m in ran if type(m) is nn.Dropout and m.rate > 0] == names


def test_spatial_dropout_zeroes_whole_maps_inside_a_real_forward():
    """lenet5's conv activations in a training forward: every map the op zeroed was not zero before."""
    net = create_model("lenet5", spatial_dropout=0.5)

    def forward(x: jax.Array) -> list[tuple[jax.Array, jax.Array]]:
        seen = []  # (input, output) of each dropout, recorded while tracing and returned by the jitted call

        def record(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            if isinstance(context.module, SpatialDropout) and context.method_name == "__call__":
                seen.append((args[0], out))
            return out

        variables = net.init(jax.random.key(0), x)
        with nn.intercept_methods(record):
            net.apply(variables, x, train=True, rngs={"dropout": jax.random.key(3)})
        return seen

    x = _positive((4, 28, 28, 1))
    seen = compiled(forward, x)(x)
    assert len(seen) == 2
    for before, after in map(lambda pair: map(np.asarray, pair), seen):
        dropped = np.all(after == 0, axis=(1, 2)) & np.any(before != 0, axis=(1, 2))
        kept = np.all(after == before / 0.5, axis=(1, 2))
        assert np.all(dropped | kept) and dropped.any() and kept.any()


def test_linear_drop_rate_rises_to_the_maximum_at_the_last_block():
    assert [linear_drop_rate(0.3, i, 3) for i in range(3)] == pytest.approx([0.1, 0.2, 0.3])


@pytest.mark.parametrize("model, size, overrides, blocks", RESIDUAL + [("mobilenet_v2", 32, dict(setting=V2_SMALL), None)])
def test_drop_path_reaches_every_residual_block_linearly(model, size, overrides, blocks):
    rates = [m.rate for m in called_modules(model, size, drop_path=0.4, **overrides)
             if isinstance(m, StochasticDepth)]
    if blocks is None:  # MobileNet v2: only the inverted residuals with a shortcut (3rd, 5th of 5) drop
        assert rates == pytest.approx([0.4 * 3 / 5, 0.4 * 5 / 5])
    else:
        assert rates == pytest.approx([0.4 * (i + 1) / blocks for i in range(blocks)])


@pytest.mark.parametrize("block", ["post_downsample", "pre"])
def test_a_dropped_branch_leaves_the_shortcut_and_evaluation_ignores_drop_path(block):
    """drop_path=1: the training output is exactly the block's shortcut path (option A's subsampled,
    zero-padded input, through a ReLU that keeps it as it is non-negative; the identity of a pre-activation
    block); rate 0.5 drops per example; in evaluation drop_path changes nothing."""
    x = _positive((4, 4, 4, 4))
    make = {"post_downsample": lambda ops, p: ResidualBlock(ops, 8, 2, shortcut="A", drop_path=p),
            "pre": lambda ops, p: PreActBlock(ops, 4, drop_path=p)}[block]
    train, evaluate = Classifier().ops(train=True), Classifier().ops(train=False)

    def outputs(x: jax.Array) -> tuple[jax.Array, ...]:
        variables = make(evaluate, 0.0).init(jax.random.key(0), x)
        rngs = {"dropout": jax.random.key(1)}
        dropped, half = (make(train, p).apply(variables, x, mutable=["batch_stats"], rngs=rngs)[0] for p in (1.0, 0.5))
        return dropped, half, make(evaluate, 0.0).apply(variables, x), make(evaluate, 1.0).apply(variables, x)

    dropped, half, eval_kept, eval_dropped = map(np.asarray, compiled(outputs, x)(x))
    shortcut = np.asarray(shortcut_a(x, 8, 2) if block == "post_downsample" else x)
    np.testing.assert_array_equal(dropped, shortcut)
    np.testing.assert_array_equal(eval_dropped, eval_kept)
    same = np.all(half == shortcut, axis=(1, 2, 3))
    assert same.any() and not same.all()


@pytest.mark.parametrize("model, overrides, message", [
    ("lenet5", dict(drop_path=0.1), "LeNet5 does not apply drop_path="),
    ("mlp", dict(spatial_dropout=0.1), "MLP does not apply spatial_dropout="),
    ("mobilenet_v1", dict(spatial_dropout=0.1), "keras_cnn, lenet5, vgg"),
    ("efficientnet_b0", dict(drop_path=0.1), "stochastic_depth_rate="),
    ("resnet20", dict(drop_path=1.5), r"drop_path is a rate in \[0, 1\]"),
    ("resnet20", dict(spatial_dropout="high"), r"spatial_dropout is a rate in \[0, 1\]"),
])
def test_config_rejects_regularisers_a_model_cannot_apply(model, overrides, message):
    assert_config_rejects(model, overrides, message)
