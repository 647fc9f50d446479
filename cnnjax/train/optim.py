"""Optimizers and learning-rate schedules from the config (optax).

The update is `clip -> [coupled L2, L1] -> optimizer -> [decoupled decay] -> -lr(step)`, with weight decay
and the L1 penalty masked to convolution/dense kernels by default: decaying BatchNorm scales, biases or PReLU
slopes only hurts. L1 and L2 together are the elastic net (seed 004); L1 is always coupled (a gradient term),
also beside adamw's decoupled decay. The max-norm constraint is not here: it projects the parameters after the
update (`regularizers.max_norm_project`, applied in the train step). The plateau schedule's multiplier lives in
the train state and scales the final update, which equals scaling the learning rate for every optimizer here
(each ends with a linear scale by lr).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import ml_collections
import optax

from cnnjax.train import regularizers

Schedule = Callable[[jax.Array], jax.Array]


def base_learning_rate(config: ml_collections.ConfigDict) -> float:
    """config.learning_rate, scaled by global batch / 256 under the linear scaling rule."""
    if config.lr_scaling == "linear":
        return config.learning_rate * config.batch_size / 256.0
    return config.learning_rate


def make_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int) -> Schedule:
    """Learning rate as a function of the global step (the plateau multiplier is applied on top)."""
    lr = base_learning_rate(config)
    total = config.num_epochs * steps_per_epoch
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    kind = config.schedule
    if kind == "one_cycle":  # its own warm-up (config.validate refuses warmup_epochs with it)
        return one_cycle(config, lr, total)
    if kind in ("constant", "plateau"):
        main = optax.constant_schedule(lr)
    elif kind == "step":
        boundaries = {int(b * steps_per_epoch) - warmup: config.lr_decay_factor for b in config.lr_boundaries_epochs}
        main = optax.piecewise_constant_schedule(lr, boundaries)
    elif kind == "exponential":
        main = optax.exponential_decay(lr, transition_steps=steps_per_epoch, decay_rate=config.lr_decay_factor)
    elif kind == "warmup_cosine":
        main = optax.cosine_decay_schedule(lr, max(1, total - warmup), alpha=config.lr_min_factor)
    elif kind == "inverse_time":
        main = inverse_time(lr, config.get("inverse_time_decay", 0.0))
    elif kind == "cyclic_cosine":
        main = _cycles(lr, cycle_steps(config, steps_per_epoch), config.num_cycles, warmup, config.lr_min_factor)
    else:
        raise ValueError(f"unknown schedule {kind!r}")
    if warmup:
        return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])
    return main


def one_cycle(config: ml_collections.ConfigDict, lr: float, total: int) -> Schedule:
    """Smith's one-cycle: from lr / div_factor up to lr over the first pct_start of the run, then down to
    lr / (div_factor * final_div_factor); "cosine" (fast.ai) or "linear" (Smith's triangle + annihilation)."""
    kwargs = dict(transition_steps=max(1, total), peak_value=lr, pct_start=config.one_cycle_pct_start,
                  div_factor=config.one_cycle_div_factor, final_div_factor=config.one_cycle_final_div_factor)
    if config.one_cycle_shape == "linear":
        return optax.linear_onecycle_schedule(**kwargs)
    return optax.cosine_onecycle_schedule(**kwargs)


def inverse_time(lr: float, decay: float) -> Schedule:
    """lr / (1 + decay * update): the legacy `decay=` argument of Keras optimizers (RMSprop(decay=1e-6))."""
    return lambda step: lr / (1.0 + decay * step)


def cycle_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
    """Steps per cycle of the cyclic_cosine schedule (config.validate makes cycles whole epochs)."""
    return config.num_epochs // config.num_cycles * steps_per_epoch


def is_cycle_end(config: ml_collections.ConfigDict, step: int, steps_per_epoch: int) -> bool:
    """Whether `step` ends a cycle of cyclic_cosine: its checkpoint is a snapshot (an ensemble member)."""
    return config.schedule == "cyclic_cosine" and step > 0 and step % cycle_steps(config, steps_per_epoch) == 0


def _cycles(lr: float, cycle: int, num_cycles: int, warmup: int, min_factor: float) -> Schedule:
    """Cosine from `lr` to `lr * min_factor` over each cycle, restarting at `lr` (Loshchilov & Hutter's SGDR;
    Huang et al.'s snapshot ensembles). Runs after the warm-up, which takes the first cycle's first steps."""
    cosines = [optax.cosine_decay_schedule(lr, max(1, cycle - (warmup if k == 0 else 0)), alpha=min_factor)
               for k in range(num_cycles)]
    return optax.join_schedules(cosines, [k * cycle - warmup for k in range(1, num_cycles)])


def decay_mask(params: Any, which: str) -> Any:
    """True for the leaves weight decay applies to: kernels only, or all parameters."""
    def is_kernel(path, leaf) -> bool:
        return which == "all" or getattr(path[-1], "key", None) == "kernel"
    return jax.tree_util.tree_map_with_path(is_kernel, params)


def make_optimizer(config: ml_collections.ConfigDict, schedule: Schedule) -> optax.GradientTransformation:
    name = config.optimizer
    mask = lambda params: decay_mask(params, config.weight_decay_mask)
    parts = []
    if config.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(config.grad_clip_norm))
    if config.weight_decay > 0 and name != "adamw":
        parts.append(optax.add_decayed_weights(config.weight_decay, mask))  # L2 added to the gradient
    if config.get("l1_penalty", 0.0) > 0:  # with weight_decay: the elastic net
        parts.append(regularizers.add_l1_subgradient(config.l1_penalty, mask))
    if name in ("momentum", "nesterov"):
        parts.append(optax.trace(decay=config.momentum, nesterov=name == "nesterov"))
    elif name == "rmsprop":
        parts.append(optax.scale_by_rms(decay=config.rmsprop_decay))
    elif name in ("adam", "adamw"):
        parts.append(optax.scale_by_adam(b1=config.adam_b1, b2=config.adam_b2))
    elif name != "sgd":
        raise ValueError(f"unknown optimizer {name!r}")
    if name == "adamw" and config.weight_decay > 0:
        parts.append(optax.add_decayed_weights(config.weight_decay, mask))  # decoupled (Loshchilov & Hutter)
    parts.append(optax.scale_by_learning_rate(schedule))
    return optax.chain(*parts)


def scale_updates(updates: Any, scale: jax.Array) -> Any:
    return jax.tree.map(lambda u: u * scale.astype(u.dtype), updates)
