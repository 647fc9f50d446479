"""Shared checks of the model-zoo tests: shapes, parameter counts, host-side variables, a compiled forward
and a compiled step of the library's train step.

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

from cnnjax.config import base_config
from cnnjax.models import create_model, model_info
from cnnjax.train.optim import make_optimizer, make_schedule
from cnnjax.train.state import PlateauState, TrainState
from cnnjax.train.step import StepConfig
from cnnjax.train.step import train_step as library_train_step

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


def optimizer() -> tuple[optax.GradientTransformation, Callable]:
    """The trainer's optimizer and schedule for the default config (Adam, constant learning rate)."""
    config = base_config()
    schedule = make_schedule(config, steps_per_epoch=1)
    return make_optimizer(config, schedule), schedule


def train_step(model: nn.Module, x: jax.Array, labels: jax.Array, aux_weight: float = 0.3) -> Callable:
    """`step(variables, rng) -> (state, metrics)`: the library's single-device `train_step` (loss with
    `aux_weight` x that of each sown auxiliary head, the default optimizer) from a fresh `TrainState` over
    `variables`; `rng` is a raw uint32 key (`jax.random.PRNGKey`) from which the dropout key is folded."""
    tx, schedule = optimizer()
    cfg = StepConfig(aux_loss_weight=aux_weight)

    def step(variables: dict, rng: jax.Array):
        params = variables["params"]
        state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                           batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params), rng=rng,
                           plateau=PlateauState.create())
        return library_train_step(state, x, labels, model=model, tx=tx, schedule=schedule, cfg=cfg,
                                  axis_name=None)

    return step


@dataclasses.dataclass(frozen=True)
class TrainStepResult:
    aux_logits: dict  # shapes of the sown auxiliary logits, {} for models without heads
    loss: Callable[[int], float]  # the loss for another rng seed, i.e. dropout key (same compiled step)


def check_train_step(model: Model, size: Size, batch: int = 2, *, fast_compile: bool = True,
                     **overrides: Any) -> TrainStepResult:
    """One compiled step of the library's `train_step`: finite loss and updated parameters, every kernel
    updated (it received a non-zero gradient: every layer is reached, aux heads included, as Adam's first
    step moves each element with a non-zero gradient by ~lr), and, if the model has BatchNorm, every running
    statistic moved.

    `fast_compile=False` keeps XLA's backend optimisations: at level 0 XLA:CPU returns NaN gradients for
    the highway network (finite with the default level; not reduced to a single op yet)."""
    module = build(model, **overrides)
    x = images(size, batch, sample_shape(model, size)[2])
    labels = jnp.arange(batch) % module.num_classes
    variables = host_variables(module, x)
    step = train_step(module, x, labels)

    def summary(variables: dict, rng: jax.Array):
        new, metrics = step(variables, rng)  # per-kernel sums, not ~200 eager reductions
        moved = jax.tree.map(lambda a, b: jnp.abs(a - b).sum(), new.params, variables["params"])
        return metrics, moved, new.batch_stats

    run = compiled(summary, variables, jax.random.PRNGKey(2), fast_compile=fast_compile)
    metrics, moved_sums, batch_stats = run(variables, jax.random.PRNGKey(2))
    assert bool(jnp.isfinite(metrics["loss"])) and int(metrics["nonfinite"]) == 0
    sums = {jax.tree_util.keystr(p): float(g) for p, g in jax.tree_util.tree_leaves_with_path(moved_sums)}
    assert all(np.isfinite(v) for v in sums.values()), sums
    assert all(v > 0 for k, v in sums.items() if "kernel" in k), [k for k, v in sums.items() if v == 0]
    has_bn = any(p[-1].key == "scale" for p, _ in jax.tree_util.tree_leaves_with_path(variables["params"]))
    assert has_bn == ("batch_stats" in variables)
    if has_bn:
        moved = jax.tree.map(lambda a, b: not np.array_equal(a, b), variables["batch_stats"], batch_stats)
        assert all(jax.tree.leaves(moved)), [jax.tree_util.keystr(p) for p, m in
                                             jax.tree_util.tree_leaves_with_path(moved) if not m]
    sown = {}  # traced again (shapes only) for models with heads: the library's step does not return them
    if getattr(module, "aux_logits", False):
        _, sown = jax.eval_shape(lambda v: module.apply(v, x, train=True, rngs={"dropout": jax.random.key(0)},
                                                        mutable=["batch_stats", "aux_logits"]), variables)
    return TrainStepResult(sown.get("aux_logits", {}),
                           lambda seed: float(run(variables, jax.random.PRNGKey(seed))[0]["loss"]))


def called_modules(model: Model, size: Size, train: bool = True, **overrides: Any) -> list[nn.Module]:
    """Every module whose `__call__` a forward runs, in call order (traced with eval_shape: nothing is
    computed). Options are checked on the layers that run, not on the model's own fields."""
    module = build(model, **overrides)
    x = jax.ShapeDtypeStruct((2, *sample_shape(model, size)), jnp.float32)
    variables = init_shapes(module, x)
    called: list[nn.Module] = []

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__":
            called.append(context.module)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(lambda v, x: module.apply(v, x, train=train, rngs={"dropout": jax.random.key(0)},
                                                 mutable=True), variables, x)
    return called


def dropout_rates(model: Model, size: Size, train: bool = True, **overrides: Any) -> list[float]:
    """Rates of the dropout layers that drop something in a forward (none may in evaluation)."""
    return [m.rate for m in called_modules(model, size, train, **overrides)
            if isinstance(m, nn.Dropout) and not m.deterministic and m.rate > 0]


def kernel_init_variance(model: Model, size: Size, layer: type = nn.Conv,
                         **overrides: Any) -> tuple[float, int, int]:
    """(sample variance, fan_in, fan_out) of a fresh draw of the initialiser the largest `layer` of a forward
    uses: which scaling rule a weight_init applies, measured."""
    convs = [m for m in called_modules(model, size, train=False, **overrides) if type(m) is layer]
    conv = max(convs, key=lambda m: m.features)
    cin = 64 if layer is nn.Conv else 256
    shape = (*conv.kernel_size, cin, conv.features) if layer is nn.Conv else (cin, conv.features)
    kernel = np.asarray(conv.kernel_init(jax.random.key(0), shape, jnp.float32))
    receptive = int(np.prod(shape[:-2]))
    return float(kernel.var()), receptive * shape[-2], receptive * shape[-1]


class _Reached(Exception):
    pass


def first_conv_input(model: Model, x: jax.Array, **overrides: Any) -> np.ndarray:
    """What the model's first convolution receives for `x` (evaluation mode): the forward runs eagerly up
    to that call and stops there, so no parameters are needed and nothing else is computed."""
    module = build(model, **overrides)

    def stop(next_fun, args, kwargs, context):
        if isinstance(context.module, nn.Conv) and context.method_name == "__call__":
            raise _Reached(args[0])
        return next_fun(*args, **kwargs)

    try:
        with nn.intercept_methods(stop):
            module.apply({"params": {}}, x, train=False)
    except _Reached as reached:
        return np.asarray(reached.args[0])
    raise AssertionError("the forward called no convolution")


def assert_config_rejects(model: str, overrides: dict[str, Any], message: str) -> None:
    """validate() of base_config() with `model` and these model_overrides raises one line matching `message`."""
    import pytest

    from cnnjax.config import ConfigError, validate

    config = base_config()
    config.model = model
    for key, value in overrides.items():
        config.model_overrides[key] = value
    with pytest.raises(ConfigError, match=message) as err:
        validate(config)
    assert "\n" not in str(err.value)
