"""The activation catalogue (seed 004) through real models: every name trains, PReLU learns a slope per
channel, RReLU is random in training and deterministic (mean slope) at test time."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnjax.models import create_model, model_info
from cnnjax.models.activations import ACTIVATIONS, RRELU_LOWER, RRELU_UPPER, Activation

KEY = jax.random.key(0)
MLP_INPUT = (4, 28, 28, 1)  # one shape for every eager MLP run, so its compiled primitives are reused


def batch(shape=(4, 12, 12, 1), classes=10, seed=0):
    kx, ky = jax.random.split(jax.random.key(seed))
    return jax.random.normal(kx, shape), jax.random.randint(ky, (shape[0],), 0, classes)


def loss_and_grads(model, params, x, y, rng):
    """Eagerly: each primitive is compiled once and reused across the whole sweep, where `jax.jit` would
    compile a complete backward pass for every activation."""

    def loss_fn(p):
        logits = model.apply({"params": p}, x, train=True, rngs={"dropout": rng})
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return jax.value_and_grad(loss_fn)(params)


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("name", ["keras_cnn", "lenet5", "resnet20"])
def test_every_activation_builds_into_conv_nets(name, act):
    """Init + eval and train forwards, traced abstractly (the numerics are checked on the MLP below)."""
    model = create_model(name, act=act, num_classes=7)
    x = jax.ShapeDtypeStruct((2, *model_info(name).input_shape), jnp.float32)

    def forwards(inp):
        variables = model.init(KEY, inp)
        rngs = {"dropout": jax.random.key(1)}
        return [model.apply(variables, inp, train=t, rngs=rngs, mutable=["batch_stats"])[0] for t in (0, 1)]

    assert [o.shape for o in jax.eval_shape(forwards, x)] == [(2, 7), (2, 7)]


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_every_activation_has_useful_gradients(act):
    model = create_model("mlp", act=act, hidden=(32,))
    x, y = batch(MLP_INPUT)
    params = model.init(KEY, x)["params"]
    loss, grads = loss_and_grads(model, params, x, y, jax.random.key(1))
    assert np.isfinite(float(loss))
    first_layer = float(jnp.abs(grads["Dense_0"]["kernel"]).max())  # the signal crosses the activation
    assert np.isfinite(first_layer) and first_layer > 0


def test_unknown_activation_is_rejected():
    model = create_model("mlp", act="relu7")
    with pytest.raises(ValueError, match="unknown activation 'relu7'; choose one of"):
        model.init(KEY, jnp.zeros((1, 28, 28, 1)))


def test_leaky_relu_uses_act_slope():
    x = jnp.array([-2.0, 3.0])
    assert jnp.allclose(Activation("leaky_relu", slope=0.2).apply({}, x), jnp.array([-0.4, 3.0]))


def test_prelu_has_one_slope_per_channel_in_a_conv_net():
    model = create_model("keras_cnn", act="prelu")
    params = jax.eval_shape(model.init, KEY, jnp.zeros((1, 12, 12, 1)))["params"]
    slopes = {name: p["alpha"].shape for name, p in params.items() if name.startswith("Activation")}
    assert slopes == {"Activation_0": (32,), "Activation_1": (32,), "Activation_2": (64,),
                      "Activation_3": (64,), "Activation_4": (512,)}


def test_prelu_slopes_are_learned_per_channel():
    model = create_model("mlp", act="prelu", hidden=(32,), act_slope=0.25)
    x, y = batch(MLP_INPUT)
    params = model.init(KEY, x)["params"]
    assert bool(jnp.all(params["Activation_0"]["alpha"] == 0.25))  # starts at act_slope
    _, grads = loss_and_grads(model, params, x, y, jax.random.key(1))
    g = np.asarray(grads["Activation_0"]["alpha"])
    assert g.shape == (32,) and np.abs(g).max() > 0
    assert len(np.unique(g)) > 16  # each channel's slope gets its own gradient


def mlp_with_rrelu():
    model = create_model("mlp", act="rrelu", hidden=(32,))
    x, _ = batch(MLP_INPUT)
    return model, model.init(KEY, x), x


def test_rrelu_is_random_in_training():
    model, variables, x = mlp_with_rrelu()
    run = lambda seed: model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(seed)})
    assert not jnp.allclose(run(1), run(2))
    assert jnp.array_equal(run(1), run(1))
    with pytest.raises(Exception, match="dropout"):  # the random slopes need an rng
        model.apply(variables, x, train=True)


def test_rrelu_slopes_are_drawn_from_the_range():
    x = -jnp.ones((10_000,))
    slopes = -Activation("rrelu", train=True).apply({}, x, rngs={"dropout": jax.random.key(3)})
    assert float(slopes.min()) >= RRELU_LOWER and float(slopes.max()) <= RRELU_UPPER
    assert float(slopes.std()) > 0.05  # really random, about uniform (std (1/3-1/8)/sqrt(12) = 0.06)


def test_rrelu_at_test_time_is_leaky_relu_with_the_mean_slope():
    model, variables, x = mlp_with_rrelu()
    out = model.apply(variables, x)
    assert jnp.array_equal(out, model.apply(variables, x))
    p = variables["params"]
    h = x.reshape(len(x), -1) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
    mean_slope = (1 / 8 + 1 / 3) / 2
    h = jnp.where(h >= 0, h, mean_slope * h)
    expected = h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
    assert jnp.allclose(out, expected, atol=1e-5)
