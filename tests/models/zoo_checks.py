"""Shared checks of the model-zoo tests: shapes, parameter counts, host-side variables, a compiled forward
and a compiled train step.

Every helper takes either a registered name (built by `create_model(name, **overrides)`, so unknown options
fail as they would for a user) or an already built module (cloned with the overrides).

Compile time dominates these tests on XLA:CPU, hence two choices:
* variables are drawn on the host with numpy from the `jax.eval_shape` tree of `model.init`: a jitted
  `init` compiles a threefry sampler per parameter tensor (~0.2-1 s of CPU each, ~10-20 s for a model);
* the forward and the train step run once each, so XLA's backend optimisations (~35% of compile time)
  are switched off for them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnnjax.models import create_model, model_info

Model = str | nn.Module
Size = int | tuple[int, int]
ONE_SHOT = {"xla_backend_optimization_level": 0}
BLOCK = 2**20  # kernels larger than this tile one block of draws: VGG's fc6 alone has 103M weights
CONSTANTS = {"scale": 1.0, "var": 1.0, "mean": 0.0, "alpha": 0.25}  # unit BN scale and statistics, PReLU 0.25
BIAS_STD = 0.1


def rngs() -> dict[str, jax.Array]:
    return {"params": jax.random.key(0), "dropout": jax.random.key(1)}


def build(model: Model, **overrides: Any) -> nn.Module:
    """A registered name goes through `create_model`; a module is cloned with the overrides."""
    if isinstance(model, str):
        return create_model(model, **overrides)
    return model.clone(**overrides) if overrides else model


def sample_shape(model: Model, size: Size | None = None) -> tuple[int, int, int]:
    """(H, W, C) of one input: the registered input shape, or `size` with the registered channels (3 for a
    bare module, which does not know its registration)."""
    info = model_info(model) if isinstance(model, str) else None
    if size is None:
        if info is None:
            raise TypeError("a module has no registered input shape: pass `size`")
        return info.input_shape
    h, w = (size, size) if isinstance(size, int) else size
    return h, w, info.input_shape[2] if info else 3


def images(size: Size, batch: int = 2, channels: int = 3, seed: int = 1) -> jax.Array:
    h, w = (size, size) if isinstance(size, int) else size
    return jnp.asarray(np.random.default_rng(seed).standard_normal((batch, h, w, channels), np.float32))


def init_shapes(model: nn.Module, x: jax.Array | jax.ShapeDtypeStruct) -> dict:
    """The variable tree of `model.init` as shapes only: nothing is compiled or computed."""
    return jax.eval_shape(lambda x: model.init(rngs(), x), x)


def param_count(model: Model, size: Size | None = None, **overrides: Any) -> int:
    """Size of the `params` collection (BN scale/bias in, running statistics out), as torchvision counts."""
    x = jax.ShapeDtypeStruct((1, *sample_shape(model, size)), jnp.float32)
    return sum(a.size for a in jax.tree.leaves(init_shapes(build(model, **overrides), x)["params"]))


def feature_shapes(model: Model, size: Size, **overrides: Any) -> dict[str, tuple[int, ...]]:
    """Output shape of every named top-level submodule (e.g. "conv1") for one image, via eval_shape."""
    module = build(model, **overrides)
    x = jnp.zeros((1, *sample_shape(model, size)), jnp.float32)
    _, state = jax.eval_shape(lambda: module.init_with_output(rngs(), x, capture_intermediates=True))
    return {k: v["__call__"][0].shape for k, v in state["intermediates"].items() if k != "__call__"}


def _normal(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    n = int(np.prod(shape))
    if n <= BLOCK:
        return (rng.standard_normal(n, np.float32) * np.float32(std)).reshape(shape)
    block = rng.standard_normal(BLOCK, np.float32) * np.float32(std)  # scale before tiling: 60x faster
    return np.tile(block, -(-n // BLOCK))[:n].reshape(shape)


def host_variables(model: nn.Module, x: jax.Array, seed: int = 0) -> dict:
    """`model.init`'s tree filled by numpy: He-scaled normal kernels (fresh draws per tensor), small random
    biases, unit BN scale/statistics, 0.25 PReLU slopes. Enough for shape, finiteness and gradient checks;
    tests of the initial values themselves call `init` on small modules or with weight_init="zeros".

    Biases are not zero so that no BN input has an exactly zero batch mean by symmetry (e.g. BN -> 1x1 conv
    -> BN in ShuffleNet at a 1x1 map): with them every running statistic must move in a train step."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf: jax.ShapeDtypeStruct) -> np.ndarray:
        name = path[-1].key
        if name in CONSTANTS:
            return np.full(leaf.shape, CONSTANTS[name], np.float32)
        if name == "bias":
            return _normal(rng, leaf.shape, BIAS_STD)
        return _normal(rng, leaf.shape, np.sqrt(2.0 / np.prod(leaf.shape[:-1])))

    return jax.tree_util.tree_map_with_path(fill, init_shapes(model, x))


def compiled(fn: Callable, *args: Any, fast_compile: bool = True) -> Callable:
    """`fn` compiled once for `args`, by default without backend optimisation (it runs once or twice)."""
    return jax.jit(fn).lower(*args).compile(compiler_options=ONE_SHOT if fast_compile else None)


def check_forward(model: Model, size: Size, batch: int = 2, **overrides: Any) -> jax.Array:
    """Compiled eval-mode forward on random images; returns the logits after checking shape and finiteness."""
    module = build(model, **overrides)
    x = images(size, batch, sample_shape(model, size)[2])
    variables = host_variables(module, x)
    logits = compiled(lambda v, x: module.apply(v, x, train=False), variables, x)(variables, x)
    assert logits.shape == (batch, module.num_classes)
    assert bool(jnp.all(jnp.isfinite(logits)))
    return logits


def train_step(model: nn.Module, x: jax.Array, labels: jax.Array, aux_weight: float = 0.3) -> Callable:
    """`step(variables, dropout_key) -> (loss, grads, state)`: softmax cross-entropy plus `aux_weight` x that
    of each sown auxiliary head (as the trainer does); `state` holds the new batch_stats and the sown logits."""

    def step(variables: dict, key: jax.Array):
        def loss_fn(params):
            logits, state = model.apply({**variables, "params": params}, x, train=True, rngs={"dropout": key},
                                        mutable=["batch_stats", "aux_logits"])
            ce = lambda z: optax.softmax_cross_entropy_with_integer_labels(z, labels).mean()
            aux = sum(ce(a) for a in jax.tree.leaves(state.get("aux_logits", {})))
            return ce(logits) + aux_weight * aux, state

        (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])
        return loss, grads, state

    return step


@dataclasses.dataclass(frozen=True)
class TrainStepResult:
    aux_logits: dict  # sown auxiliary logits, {} for models without heads
    loss: Callable[[jax.Array], float]  # the loss for another dropout key (same compiled step)


def check_train_step(model: Model, size: Size, batch: int = 2, *, fast_compile: bool = True,
                     **overrides: Any) -> TrainStepResult:
    """One compiled gradient step: finite loss and gradients, a non-zero gradient for every kernel (every
    layer is reached, aux heads included), and, if the model has BatchNorm, every running statistic moved.

    `fast_compile=False` keeps XLA's backend optimisations: at level 0 XLA:CPU returns NaN gradients for
    the highway network (finite with the default level; not reduced to a single op yet)."""
    module = build(model, **overrides)
    x = images(size, batch, sample_shape(model, size)[2])
    labels = jnp.arange(batch) % module.num_classes
    variables = host_variables(module, x)
    step = train_step(module, x, labels)

    def summary(variables: dict, key: jax.Array):
        loss, grads, state = step(variables, key)
        return loss, jax.tree.map(lambda g: jnp.abs(g).sum(), grads), state  # not ~200 eager reductions

    run = compiled(summary, variables, jax.random.key(2), fast_compile=fast_compile)
    loss, grad_sums, state = run(variables, jax.random.key(2))
    assert bool(jnp.isfinite(loss))
    sums = {jax.tree_util.keystr(p): float(g) for p, g in jax.tree_util.tree_leaves_with_path(grad_sums)}
    assert all(np.isfinite(v) for v in sums.values()), sums
    assert all(v > 0 for k, v in sums.items() if "kernel" in k), [k for k, v in sums.items() if v == 0]
    has_bn = any(p[-1].key == "scale" for p, _ in jax.tree_util.tree_leaves_with_path(variables["params"]))
    assert has_bn == ("batch_stats" in variables)
    if has_bn:
        moved = jax.tree.map(lambda a, b: not np.array_equal(a, b), variables["batch_stats"], state["batch_stats"])
        assert all(jax.tree.leaves(moved)), [jax.tree_util.keystr(p) for p, m in
                                             jax.tree_util.tree_leaves_with_path(moved) if not m]
    return TrainStepResult(state.get("aux_logits", {}), lambda key: float(run(variables, key)[0]))
