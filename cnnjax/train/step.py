"""The pure per-device training step and the loss; `parallel.py` maps it over the device mesh.

Under `shard_map` each device sees its slice of the global batch; gradients, metrics and (per-device)
BatchNorm statistics are averaged with `pmean`, so every replica applies the same update and the result
equals one step on the global batch (exactly so with synchronised BatchNorm).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from cnnjax.sharding import AXIS
from cnnjax.train import ema, param_groups
from cnnjax.train.optim import Schedule, scale_updates
from cnnjax.train.state import TrainState


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example softmax cross-entropy in at least float32 (bf16/f16 logits are promoted, f64 kept),
    with optional label smoothing."""
    dtype = jnp.promote_types(logits.dtype, jnp.float32)
    targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=dtype)
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    return optax.softmax_cross_entropy(logits.astype(dtype), targets)


@dataclasses.dataclass(frozen=True)
class StepConfig:
    label_smoothing: float = 0.0
    aux_loss_weight: float = 0.3
    bn_sync: bool = True
    ema_decay: float = 0.0  # > 0: the state is an `EmaTrainState` and its EMA is updated every step
    ema_warmup: bool = True
    frozen: param_groups.Globs = ()  # BatchNorm statistics matching these keep their value (config.freeze)

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict, frozen: param_groups.Globs = ()) -> "StepConfig":
        """The step's settings of a run config (keys added later read as off when absent); `frozen` is
        `Experiment.frozen` (config.freeze with `head` resolved)."""
        return cls(config.label_smoothing, config.aux_loss_weight, config.bn_sync,
                   config.get("ema_decay", 0.0), config.get("ema_warmup", True), tuple(frozen))


def train_step(state: TrainState, images: jax.Array, labels: jax.Array, *, model: nn.Module,
               tx: optax.GradientTransformation, schedule: Schedule, cfg: StepConfig,
               axis_name: str | None = AXIS) -> tuple[TrainState, dict[str, jax.Array]]:
    """One SGD step on this device's batch; collectives over `axis_name` (None = single device).

    A non-finite loss leaves the state unchanged and is reported in `metrics["nonfinite"]`, so the last
    good state is what gets checkpointed when the loop stops the run. Parameters, optimizer state, BatchNorm
    statistics and the EMA stay float32 under a bfloat16 compute dtype: only the model's activations are
    narrow, the loss is promoted to float32 and gradients take the dtype of the float32 parameters.
    """
    rng = jax.random.fold_in(state.rng, state.step)
    if axis_name is not None:  # different dropout masks on each device
        rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))

    def loss_fn(params):
        variables = {"params": params, "batch_stats": state.batch_stats}
        logits, updated = model.apply(variables, images, train=True, mutable=["batch_stats", "aux_logits"],
                                      rngs={"dropout": rng})
        loss = cross_entropy(logits, labels, cfg.label_smoothing).mean()
        for aux in jax.tree.leaves(updated.get("aux_logits", {})):
            loss = loss + cfg.aux_loss_weight * cross_entropy(aux, labels, cfg.label_smoothing).mean()
        return loss, (logits, updated.get("batch_stats", {}))

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = {"loss": loss, "top1": jnp.mean(jnp.argmax(logits, -1) == labels)}
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        metrics = jax.lax.pmean(metrics, axis_name)
        if not cfg.bn_sync:  # per-device statistics were used in the step; keep replicas identical
            batch_stats = jax.lax.pmean(batch_stats, axis_name)
    if cfg.frozen:  # a frozen layer keeps its running statistics too (the forward pass still uses the batch's)
        batch_stats = jax.tree_util.tree_map_with_path(
            lambda p, new, old: old if param_groups.matches(param_groups.path_name(p), cfg.frozen) else new,
            batch_stats, state.batch_stats)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    updates = scale_updates(updates, state.plateau.scale)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state)
    if cfg.ema_decay > 0:
        decay = ema.decay_at(state.step, cfg.ema_decay, cfg.ema_warmup)
        new_state = new_state.replace(ema=ema.update(state.ema, params, batch_stats, decay))
    finite = jnp.isfinite(metrics["loss"])
    new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
    metrics["nonfinite"] = (~finite).astype(jnp.int32)
    metrics["lr"] = schedule(state.step) * state.plateau.scale
    return new_state, metrics

