"""The initialisation catalogue (seed 004) and its two lecture claims, checked with real training steps
and forwards: zero init never breaks the symmetry between units, and only He init keeps activations
alive through a deep ReLU stack."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnjax.models import create_model
from cnnjax.models.initializers import INITIALIZERS, initializer

KEY = jax.random.key(0)
FAN_IN, FAN_OUT = 28 * 28, 32  # the first Dense layer of mlp(hidden=(32,)) on 28x28x1


def data(n=16, shape=(28, 28, 1), seed=0):
    kx, ky = jax.random.split(jax.random.key(seed))
    return jax.random.normal(kx, (n, *shape)), jax.random.randint(ky, (n,), 0, 10)


# Expected standard deviation of a kernel entry for each name.
EXPECTED_STD = {
    "zeros": 0.0,
    "small": 0.001,
    "lecun": (1 / FAN_IN) ** 0.5,
    "glorot": (2 / (FAN_IN + FAN_OUT)) ** 0.5,
    "he": (2 / FAN_IN) ** 0.5,
    "he_fan_out": (2 / FAN_OUT) ** 0.5,
    "torch_default": (1 / (3 * FAN_IN)) ** 0.5,  # U(+-1/sqrt(fan_in))
}


def test_catalogue_is_covered():
    assert set(EXPECTED_STD) == set(INITIALIZERS)


@pytest.mark.parametrize("init", sorted(INITIALIZERS))
def test_every_init_sets_the_kernel_scale(init):
    model = create_model("mlp", init=init, hidden=(FAN_OUT,))
    params = model.init(KEY, jnp.zeros((1, 28, 28, 1)))["params"]
    kernel = params["Dense_0"]["kernel"]
    assert kernel.shape == (FAN_IN, FAN_OUT)
    assert float(jnp.std(kernel)) == pytest.approx(EXPECTED_STD[init], rel=0.03, abs=1e-12)
    assert float(jnp.abs(jnp.mean(kernel))) < 0.05 * EXPECTED_STD[init] + 1e-12
    assert not jnp.any(params["Dense_0"]["bias"])  # biases always start at zero


@pytest.mark.parametrize("init", sorted(INITIALIZERS))
@pytest.mark.parametrize("name", ["keras_cnn", "resnet20"])
def test_every_init_builds_conv_nets(name, init):
    """Traced abstractly: the values are checked above on the MLP, the routing here on conv kernels."""
    model = create_model(name, init=init)
    x = jax.ShapeDtypeStruct((2, 32, 32, 3) if name == "resnet20" else (2, 28, 28, 1), jnp.float32)
    logits, variables = jax.eval_shape(lambda inp: model.init_with_output(KEY, inp), x)
    assert logits.shape == (2, 10) and "Conv_0" in variables["params"]


def test_fan_out_of_a_conv_kernel_is_window_times_output_channels():
    """torchvision's ResNet/VGG init (kaiming_normal_, mode="fan_out"): std sqrt(2 / (5*5*16)) for 5x5x6->16."""
    kernel = initializer("he_fan_out")(KEY, (5, 5, 6, 16))
    assert float(jnp.std(kernel)) == pytest.approx((2 / (5 * 5 * 16)) ** 0.5, rel=0.08)


def test_unknown_init_is_rejected():
    with pytest.raises(ValueError, match="unknown init 'uniform'; choose one of zeros, small"):
        create_model("mlp", init="uniform").init(KEY, jnp.zeros((1, 28, 28, 1)))


@functools.partial(jax.jit, static_argnums=(0, 4))
def sgd(model, params, x, y, steps: int, lr: float = 1.0):
    """`steps` plain SGD steps on cross-entropy (the model's `init` does not enter `apply`)."""
    def step(p, _):
        loss_fn = lambda q: optax.softmax_cross_entropy_with_integer_labels(
            model.apply({"params": q}, x, train=True), y).mean()
        grads = jax.grad(loss_fn)(p)
        return jax.tree.map(lambda w, g: w - lr * g, p, grads), None

    return jax.lax.scan(step, params, None, length=steps)[0]


def unit_spread(kernel: jax.Array) -> float:
    """Largest difference between any output unit (last axis) and the first one."""
    return float(jnp.abs(kernel - kernel[..., :1]).max())


def trained(name, init, steps=6, **overrides):
    model = create_model(name, init=init, **overrides)
    x, y = data(shape=(28, 28, 1))
    params = model.init(KEY, x)["params"]
    return params, sgd(model.clone(weight_init="he"), params, x, y, steps)


def test_zero_init_never_breaks_symmetry_in_an_mlp():
    start, params = trained("mlp", "zeros", act="sigmoid", hidden=(32, 32))
    assert float(jnp.abs(params["Dense_0"]["kernel"]).max()) > 1e-4  # every layer did learn ...
    for layer in ("Dense_0", "Dense_1"):  # ... but the hidden units of each layer are still clones
        assert unit_spread(params[layer]["kernel"]) < 1e-6 and unit_spread(params[layer]["bias"]) < 1e-6
    assert unit_spread(params["Dense_2"]["kernel"].T) < 1e-6  # the output layer sees identical inputs
    _, he = trained("mlp", "he", act="sigmoid", hidden=(32, 32))
    assert unit_spread(he["Dense_0"]["kernel"]) > 1e-2


def test_zero_init_with_relu_gets_no_gradient_at_all():
    """With exactly zero weights every hidden pre-activation is 0, relu'(0) = 0: only the output bias moves."""
    start, params = trained("mlp", "zeros", act="relu", hidden=(32, 32))
    moved = {layer: {k: bool(jnp.any(v != start[layer][k])) for k, v in p.items()} for layer, p in params.items()}
    assert moved == {"Dense_0": {"kernel": False, "bias": False}, "Dense_1": {"kernel": False, "bias": False},
                     "Dense_2": {"kernel": False, "bias": True}}


def test_zero_init_never_breaks_symmetry_between_conv_filters():
    """LeNet-5 with sigmoid units: 8 steps let the gradient reach C1 through four zero-initialised layers.
    (The random-init contrast is the MLP's above: every distinct random kernel shape costs a compile.)"""
    start, params = trained("lenet5", "zeros", act="sigmoid", steps=8)
    assert not any(jnp.any(leaf) for leaf in jax.tree.leaves(start))  # `init=` reached every kernel
    for conv, filters in (("Conv_0", 6), ("Conv_1", 16)):
        kernel = params[conv]["kernel"]
        assert kernel.shape[-1] == filters and float(jnp.abs(kernel).max()) > 0  # filters learned ...
        assert unit_spread(kernel) < 1e-6  # ... all the same filter


DEEP_RELU = create_model("mlp", act="relu", hidden=(256,) * 20)  # 20 x Dense(256) + ReLU, no BN


@jax.jit
def activation_variances(params: dict, x: jax.Array) -> jax.Array:
    """Variance of the activations after each of the 20 ReLU layers."""
    _, state = DEEP_RELU.apply({"params": params}, x, capture_intermediates=True, mutable=["intermediates"])
    return jnp.stack([jnp.var(state["intermediates"][f"Activation_{i}"]["__call__"][0]) for i in range(20)])


def deep_relu_variances(init: str) -> list[float]:
    x, _ = data(n=64, shape=(16, 16, 1))  # N(0, 1) inputs, 256 features like every hidden layer
    params = DEEP_RELU.clone(weight_init=init).init(KEY, x)["params"]
    return activation_variances(params, x).tolist()


def test_he_init_keeps_deep_relu_activations_alive_and_small_init_kills_them():
    he = deep_relu_variances("he")
    assert all(0.1 < v < 10 for v in he), he  # order 1 at every depth
    assert he[-1] / he[0] == pytest.approx(1, abs=0.9)
    small = deep_relu_variances("small")  # 0.001 * N(0, 1): each layer scales the std by ~0.011
    assert small[0] < 1e-3 and small[-1] < 1e-30
    lecun = deep_relu_variances("lecun")  # variance 1/fan_in: ReLU halves the signal at every layer
    assert lecun[-1] / lecun[0] == pytest.approx(2.0 ** -19, rel=0.8)
    assert np.all(np.diff(small) <= 0)
