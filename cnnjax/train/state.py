"""The training state: one pytree holding everything a step reads and writes, so a checkpoint of it is
a complete description of a run at a step (resume = restore it and continue)."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class PlateauState:
    """'Divide the learning rate by k when the validation metric stops improving' (seed 004)."""

    best: jax.Array  # best validation metric so far (higher is better)
    num_bad_epochs: jax.Array
    scale: jax.Array  # multiplier applied to the scheduled learning rate

    @classmethod
    def create(cls) -> "PlateauState":
        return cls(best=jnp.asarray(-jnp.inf, jnp.float32), num_bad_epochs=jnp.asarray(0, jnp.int32),
                   scale=jnp.asarray(1.0, jnp.float32))

    def update(self, metric: float, patience: int, factor: float, min_delta: float) -> "PlateauState":
        improved = metric > self.best + min_delta
        bad = jnp.where(improved, 0, self.num_bad_epochs + 1)
        reduce = bad > patience
        return PlateauState(best=jnp.maximum(self.best, metric), num_bad_epochs=jnp.where(reduce, 0, bad),
                            scale=jnp.where(reduce, self.scale * factor, self.scale))


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: optax.OptState
    rng: jax.Array  # raw uint32 PRNG key; dropout/RReLU keys are folded from it per step and device
    plateau: PlateauState


@flax.struct.dataclass
class EmaTrainState(TrainState):
    """A `TrainState` that also carries an exponential moving average of the weights (config.ema_decay > 0).

    A subclass rather than an optional field, so that a run without EMA saves exactly the checkpoint layout
    it always did (and older workdirs still restore into it). `ema` is {"params", "batch_stats"}, float32
    like the weights it averages; see `cnnjax.train.ema`.
    """

    ema: Any = None


def with_ema(state: TrainState) -> EmaTrainState:
    """`state` with its EMA (re)started at its current weights: at init, and after init_from loads new ones."""
    fields = {f.name: getattr(state, f.name) for f in dataclasses.fields(TrainState)}
    ema = jax.tree.map(jnp.copy, {"params": state.params, "batch_stats": state.batch_stats})
    return EmaTrainState(**fields, ema=ema)


def create_train_state(model, tx: optax.GradientTransformation, input_shape: tuple[int, ...],
                       seed: int, ema: bool = False) -> TrainState:
    """Initialises parameters from `seed` (same on every host) and the optimizer state (and the EMA if `ema`)."""
    init_key, dropout_key, rng = jax.random.split(jax.random.PRNGKey(seed), 3)
    # Op by op on purpose: compiling this once-run program with XLA's backend optimisation off would be
    # faster, but on XLA:CPU it gave run-to-run different initial values (seen in the 1-vs-4-device test).
    variables = model.init({"params": init_key, "dropout": dropout_key}, jnp.zeros((1, *input_shape)),
                           train=False)
    params = variables["params"]
    state = TrainState(step=jnp.asarray(0, jnp.int32), params=params,
                       batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params), rng=rng,
                       plateau=PlateauState.create())
    return with_ema(state) if ema else state
