"""The pure per-device training step and the loss; `parallel.py` maps it over the device mesh.

Under `shard_map` each device sees its slice of the global batch; gradients, metrics and (per-device)
BatchNorm statistics are averaged with `pmean`, so every replica applies the same update and the result
equals one step on the global batch (exactly so with synchronised BatchNorm).

A step is one update. With `grad_accum_steps` k > 1 each device's share of the batch runs through the model as
k sequential micro-batches (a `lax.scan`: activations of one micro-batch in memory at a time) whose gradients
are averaged into one update, so the step counter, the schedule and the epochs count updates exactly as with
k = 1. BatchNorm normalises each micro-batch by its own statistics and updates the running averages k times
per step (as accumulation in PyTorch does); dropout draws a fresh mask per micro-batch.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from cnnjax.sharding import AXIS
from cnnjax.train import ema, param_groups, regularizers
from cnnjax.train.optim import Schedule, scale_updates
from cnnjax.train.state import TrainState


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example softmax cross-entropy in at least float32 (bf16/f16 logits are promoted, f64 kept),
    with optional label smoothing.

    `labels` are integer classes (B,) or soft targets (B, K) whose rows sum to 1 (Mixup/CutMix,
    `cnnjax.data.mixing`); label smoothing applies to either: (1 - s) * targets + s / K.
    """
    dtype = jnp.promote_types(logits.dtype, jnp.float32)
    if is_soft(labels):
        targets = labels.astype(dtype)
    else:
        targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=dtype)
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    return optax.softmax_cross_entropy(logits.astype(dtype), targets)


def is_soft(labels: jax.Array) -> bool:
    """Whether a batch's labels are soft (B, K) targets rather than integer classes (B,)."""
    return labels.ndim == 2


def hard_labels(labels: jax.Array) -> jax.Array:
    """Integer classes: the labels themselves, or the argmax of soft targets (a mixed example's larger part)."""
    return jnp.argmax(labels, -1) if is_soft(labels) else labels


def top1(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Training top-1; for mixed batches a prediction of the larger part of an example's target counts as right."""
    return jnp.mean(jnp.argmax(logits, -1) == hard_labels(labels))


def example_mean(losses: jax.Array, labels: jax.Array, class_weights: tuple[float, ...] = ()) -> jax.Array:
    """The batch loss: mean of w[label] * loss over the B examples (w = 1 without class weights).

    Divided by B, not by sum(w): every device's mean then averages (pmean) to the global batch's, so the loss
    does not depend on the device count, and with "balanced" weights (mean 1 over the training set) it keeps
    the unweighted loss's scale in expectation. (PyTorch's weighted CrossEntropyLoss divides by sum(w).)
    """
    if class_weights:
        w = jnp.asarray(class_weights, losses.dtype)
        # a soft (mixed) target weighs its example by the target's share of each class
        losses = losses * (labels.astype(losses.dtype) @ w if is_soft(labels) else w[labels])
    return losses.mean()


@dataclasses.dataclass(frozen=True)
class StepConfig:
    label_smoothing: float = 0.0
    aux_loss_weight: float = 0.3
    bn_sync: bool = True
    ema_decay: float = 0.0  # > 0: the state is an `EmaTrainState` and its EMA is updated every step
    ema_warmup: bool = True
    class_weights: tuple[float, ...] = ()  # loss weight per class (class_weights); () = unweighted
    max_norm: float = 0.0  # > 0: kernels projected after every update (`regularizers.max_norm_project`)
    grad_accum_steps: int = 1  # micro-batches per update
    frozen: param_groups.Globs = ()  # BatchNorm statistics matching these keep their value (config.freeze)

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict, class_weights: tuple[float, ...] = (),
                    frozen: param_groups.Globs = ()) -> "StepConfig":
        """The step's settings of a run config (keys added later read as off when absent); `class_weights` are
        resolved from the training labels by `experiment.build`, `frozen` is `Experiment.frozen` (config.freeze
        with `head` resolved)."""
        return cls(config.label_smoothing, config.aux_loss_weight, config.bn_sync,
                   config.get("ema_decay", 0.0), config.get("ema_warmup", True), tuple(class_weights),
                   config.get("max_norm", 0.0), config.get("grad_accum_steps", 1), tuple(frozen))


def train_step(state: TrainState, images: jax.Array, labels: jax.Array, *, model: nn.Module,
               tx: optax.GradientTransformation, schedule: Schedule, cfg: StepConfig,
               axis_name: str | None = AXIS) -> tuple[TrainState, dict[str, jax.Array]]:
    """One SGD step on this device's batch; collectives over `axis_name` (None = single device).

    `labels` are integer classes (B,) or soft targets (B, K) (a Mixup/CutMix batch); see `cross_entropy`.

    A non-finite loss leaves the state unchanged and is reported in `metrics["nonfinite"]`, so the last
    good state is what gets checkpointed when the loop stops the run. Parameters, optimizer state, BatchNorm
    statistics and the EMA stay float32 under a bfloat16 compute dtype: only the model's activations are
    narrow, the loss is promoted to float32 and gradients take the dtype of the float32 parameters.
    """
    rng = jax.random.fold_in(state.rng, state.step)
    if axis_name is not None:  # different dropout masks on each device
        rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))

    def loss_fn(params, batch_stats, images, labels, rng):
        variables = {"params": params, "batch_stats": batch_stats}
        logits, updated = model.apply(variables, images, train=True, mutable=["batch_stats", "aux_logits"],
                                      rngs={"dropout": rng})
        loss = example_mean(cross_entropy(logits, labels, cfg.label_smoothing), labels, cfg.class_weights)
        for aux in jax.tree.leaves(updated.get("aux_logits", {})):
            loss = loss + cfg.aux_loss_weight * example_mean(cross_entropy(aux, labels, cfg.label_smoothing), labels,
                                                             cfg.class_weights)
        return loss, (logits, updated.get("batch_stats", {}))

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if cfg.grad_accum_steps == 1:
        (loss, (logits, batch_stats)), grads = grad_fn(state.params, state.batch_stats, images, labels, rng)
        metrics = {"loss": loss, "top1": top1(logits, labels)}
    else:
        grads, batch_stats, metrics = _accumulate(grad_fn, state, images, labels, rng, cfg.grad_accum_steps)
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
    if cfg.max_norm > 0:
        params = regularizers.max_norm_project(params, cfg.max_norm)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state)
    if cfg.ema_decay > 0:
        decay = ema.decay_at(state.step, cfg.ema_decay, cfg.ema_warmup)
        new_state = new_state.replace(ema=ema.update(state.ema, params, batch_stats, decay))
    finite = jnp.isfinite(metrics["loss"])
    new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
    metrics["nonfinite"] = (~finite).astype(jnp.int32)
    metrics["lr"] = schedule(state.step) * state.plateau.scale
    return new_state, metrics



def _accumulate(grad_fn, state: TrainState, images: jax.Array, labels: jax.Array, rng: jax.Array, k: int):
    """Mean gradient, loss and top-1 over k equal micro-batches of this device's batch, run one after another;
    the BatchNorm statistics thread through them. Returns (grads, batch_stats, metrics)."""
    if images.shape[0] % k:
        raise ValueError(f"the per-device batch of {images.shape[0]} does not split into grad_accum_steps={k} "
                         "micro-batches; make batch_size / devices a multiple of grad_accum_steps")
    split = lambda x: x.reshape(k, x.shape[0] // k, *x.shape[1:])

    def micro(carry, batch):
        grads, batch_stats, loss, correct, index = carry
        (m_loss, (logits, batch_stats)), m_grads = grad_fn(state.params, batch_stats, batch[0], batch[1],
                                                           jax.random.fold_in(rng, index))
        grads = jax.tree.map(jnp.add, grads, m_grads)
        return (grads, batch_stats, loss + m_loss, correct + top1(logits, batch[1]), index + 1), None

    zeros = jax.tree.map(jnp.zeros_like, state.params)
    init = (zeros, state.batch_stats, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32), jnp.int32(0))
    (grads, batch_stats, loss, correct, _), _ = jax.lax.scan(micro, init, (split(images), split(labels)))
    return jax.tree.map(lambda g: g / k, grads), batch_stats, {"loss": loss / k, "top1": correct / k}
