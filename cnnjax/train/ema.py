"""Exponential moving average of the weights (Polyak averaging), updated inside the jitted train step.

`ema <- d * ema + (1 - d) * new` after every step, for the parameters *and* the BatchNorm statistics
(as timm's ModelEmaV2 averages the whole state_dict, buffers included): the EMA weights are then scored with
statistics that moved as slowly as they did, rather than with the raw run's latest ones. With `warmup`
the decay is TensorFlow's `ExponentialMovingAverage(num_updates=t)` rule, d = min(decay, (1 + t) / (10 + t))
for the t-th update (t = 0, 1, ...), so the first thousands of steps do not pin the average to the random
initialisation (with 0.9999 and no warm-up, the init still weighs e^-1 after 10,000 steps).

Everything is float32 (the weights are, whatever the compute dtype) and pure: the step returns a new
state, so the EMA is checkpointed, restored and resumed bit-identically with the rest of it.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from cnnjax.train.checkpoint import BEST_METRIC

EMA_METRIC = "val_ema_top1"  # checkpoint meta: the EMA weights' validation top-1


def decay_at(step: jax.Array, decay: float, warmup: bool) -> jax.Array:
    """The decay of the update made at `step` (the count of updates before it), as float32."""
    d = jnp.asarray(decay, jnp.float32)
    if not warmup:
        return d
    t = step.astype(jnp.float32)
    return jnp.minimum(d, (1.0 + t) / (10.0 + t))


def update(ema: dict[str, Any], params: Any, batch_stats: Any, decay: jax.Array) -> dict[str, Any]:
    """The moving average after one step: `ema + (1 - d) * (new - ema)` leaf by leaf (each leaf's own dtype)."""
    new = {"params": params, "batch_stats": batch_stats}
    return jax.tree.map(lambda avg, x: avg + (1 - decay).astype(avg.dtype) * (x - avg), ema, new)


def add_ema_metrics(validation: dict[str, float], state: Any,
                    score: Callable[[dict[str, Any]], dict[str, float]]) -> dict[str, float]:
    """`validation` (the raw weights' metrics) plus `ema_<metric>` = `score(ema weights)` if the state has an EMA."""
    ema = getattr(state, "ema", None)
    if ema is None:
        return validation
    return {**validation, **{f"ema_{k}": v for k, v in score(ema).items() if k != "num_examples"}}


def checkpoint_scores(validation: dict[str, float] | None, select_ema: bool) -> dict[str, float | None]:
    """The meta keys a checkpoint is ranked by: `val_top1` (BEST_METRIC) is the raw weights' validation top-1,
    or the EMA's with `ema_select_best`; `val_ema_top1` is recorded whenever the run has an EMA."""
    if validation is None:
        return {BEST_METRIC: None}
    scores = {BEST_METRIC: validation["ema_top1" if select_ema else "top1"]}
    if "ema_top1" in validation:
        scores[EMA_METRIC] = validation["ema_top1"]
    return scores
