"""AlexNet (paper), AlexNet one-tower (torchvision), ZFNet, and the LRN they use.

The helpers at the top (`param_count`, `feature_shapes`, `random_variables`, `check_forward`,
`check_train_step`) are shared by the VGG and SqueezeNet tests.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnjax.models import create_model, model_info
from cnnjax.models.lrn import local_response_norm


def param_count(name: str, **overrides) -> int:
    model = create_model(name, **overrides)
    x = jnp.zeros((1, *model_info(name).input_shape), jnp.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables["params"]))


def feature_shapes(name: str, size: int | tuple[int, int], **overrides) -> dict[str, tuple[int, ...]]:
    """Output shapes of every named submodule (e.g. "conv1") for one image, without computing anything."""
    model = create_model(name, **overrides)
    hw = (size, size) if isinstance(size, int) else size
    x = jnp.zeros((1, *hw, 3), jnp.float32)
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    _, state = jax.eval_shape(lambda: model.init_with_output(rngs, x, capture_intermediates=True))
    return {k: v["__call__"][0].shape for k, v in state["intermediates"].items() if k != "__call__"}


def random_variables(model, x: jax.Array, seed: int = 0) -> dict:
    """He-scaled numpy weights in the shapes of `model.init`.

    XLA:CPU spends about a second compiling each truncated-normal sampler of a jitted `model.init`
    (~10 s for AlexNet, more for SqueezeNet's 26 convolutions). Here kernels tile one block of 2**20
    normal draws, enough randomness for shape, finiteness and gradient checks; `model.init` itself is
    traced by `jax.eval_shape`.
    """
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
    block = np.random.default_rng(seed).standard_normal(2**20, np.float32)

    def fill(path, leaf):
        name, shape = path[-1].key, leaf.shape
        if name == "kernel":
            kernel = np.resize(block, shape)
            kernel *= np.float32(np.sqrt(2 / np.prod(shape[:-1])))
            return kernel
        if name in ("scale", "var"):
            return np.ones(shape, np.float32)
        return np.full(shape, 0.25, np.float32) if name == "alpha" else np.zeros(shape, np.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def check_forward(name: str, size: int, batch: int = 2, **overrides) -> jax.Array:
    """Jitted eval forward on random images; returns the logits after checking shape and finiteness."""
    model = create_model(name, **overrides)
    x = jax.random.normal(jax.random.key(0), (batch, size, size, 3))
    logits = jax.jit(lambda v, x: model.apply(v, x, train=False))(random_variables(model, x), x)
    assert logits.shape == (batch, model.num_classes)
    assert bool(jnp.all(jnp.isfinite(logits)))
    return logits


def check_train_step(name: str, size: int, batch: int = 2, **overrides) -> None:
    """One jitted gradient step on cross-entropy: finite loss, every kernel gets a gradient, BN stats move."""
    model = create_model(name, **overrides)
    x = jax.random.normal(jax.random.key(0), (batch, size, size, 3))
    labels = jnp.arange(batch) % model.num_classes
    variables = random_variables(model, x)

    @jax.jit
    def step(variables, key):
        def loss_fn(params):
            logits, updates = model.apply({**variables, "params": params}, x, train=True,
                                          mutable=["batch_stats"], rngs={"dropout": key})
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), updates

        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])
        return loss, grads, updates

    loss, grads, updates = step(variables, jax.random.key(2))
    assert bool(jnp.isfinite(loss))
    sizes = {jax.tree_util.keystr(p): float(jnp.abs(g).sum())
             for p, g in jax.tree_util.tree_leaves_with_path(grads)}
    assert all(np.isfinite(v) for v in sizes.values())
    assert all(v > 0 for k, v in sizes.items() if "kernel" in k), sizes  # every layer is reached
    if "batch_stats" in variables:
        before, after = jax.tree.leaves(variables["batch_stats"]), jax.tree.leaves(updates["batch_stats"])
        assert any(not np.allclose(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("name, count", [
    ("alexnet", 60_965_224), ("alexnet_owt", 61_100_840), ("zfnet", 62_357_608)])
def test_param_count(name, count):
    assert param_count(name) == count


def test_alexnet_grouped_convolutions():
    """conv2/4/5 each see half of their input channels (two GPUs); conv3 sees all of them."""
    model = create_model("alexnet")
    x = jnp.zeros((1, 224, 224, 3))
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), x))["params"]
    in_channels = {k: params[k]["kernel"].shape[2] for k in ("conv2", "conv3", "conv4", "conv5")}
    assert in_channels == {"conv2": 48, "conv3": 256, "conv4": 192, "conv5": 192}


@pytest.mark.parametrize("name, sizes", [
    # the paper's 55-27-13-6 maps at 224 (conv1 padding 2), and ZFNet's Fig. 3: 110-55-26-13-6
    ("alexnet", {"conv1": 55, "conv2": 27, "conv5": 13}),
    ("alexnet_owt", {"conv1": 55, "conv2": 27, "conv5": 13}),
    ("zfnet", {"conv1": 110, "conv2": 26, "conv5": 13}),
])
def test_feature_map_sizes_at_224(name, sizes):
    shapes = feature_shapes(name, 224)
    assert {k: shapes[k][1] for k in sizes} == sizes
    assert shapes["fc6"] == (1, 4096) and shapes["fc8"] == (1, 1000)


@pytest.mark.parametrize("name", ["alexnet", "alexnet_owt", "zfnet"])
def test_smallest_input_runs_and_smaller_raises(name):
    size = model_info(name).min_input_size
    assert size == {"alexnet": 63, "alexnet_owt": 63, "zfnet": 47}[name]
    assert feature_shapes(name, size)["fc8"] == (1, 1000)
    with pytest.raises(ValueError, match=f"at least {size}x{size}"):
        feature_shapes(name, (size, size - 1))


@pytest.mark.parametrize("name", ["alexnet", "alexnet_owt", "zfnet"])
def test_forward_at_smallest_input(name):
    check_forward(name, model_info(name).min_input_size)


def test_alexnet_train_step():
    check_train_step("alexnet", model_info("alexnet").min_input_size, num_classes=10)


def test_overrides():
    """lrn=False removes only parameter-free layers; act/dropout/init apply to every model of the file."""
    x = jax.random.normal(jax.random.key(0), (1, 63, 63, 3))
    base = create_model("alexnet", num_classes=10)
    ablated = base.clone(lrn=False)
    variables = random_variables(base, x)
    assert param_count("alexnet", lrn=False) == param_count("alexnet")
    assert not np.allclose(jax.jit(base.apply)(variables, x), jax.jit(ablated.apply)(variables, x))
    assert create_model("zfnet", dropout=0.3).dropout == 0.3
    assert param_count("alexnet_owt", act="prelu") == 61_100_840 + 64 + 192 + 384 + 256 + 256 + 4096 + 4096
    with pytest.raises(ValueError, match="unknown AlexNet arch"):
        feature_shapes("alexnet", 224, arch="alexnet2")


def _lrn_reference(x: np.ndarray, size: int, alpha: float, beta: float, k: float) -> np.ndarray:
    """The formula, one channel at a time (channels outside [0, C) contribute nothing)."""
    c = x.shape[-1]
    out = np.empty_like(x)
    for i in range(c):
        lo, hi = max(0, i - size // 2), min(c, i + (size - 1) // 2 + 1)
        s = np.sum(x[..., lo:hi] ** 2, axis=-1)
        out[..., i] = x[..., i] / (k + alpha / size * s) ** beta
    return out


@pytest.mark.parametrize("size, channels", [(5, 12), (4, 7), (5, 3)])
def test_lrn_matches_formula(size, channels):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, channels)).astype(np.float32) * 30
    got = local_response_norm(jnp.asarray(x), size=size, alpha=1e-2, beta=0.75, k=2.0)
    np.testing.assert_allclose(got, _lrn_reference(x, size, 1e-2, 0.75, 2.0), rtol=1e-5, atol=1e-6)
    assert local_response_norm(jnp.asarray(x, jnp.bfloat16)).dtype == jnp.bfloat16
