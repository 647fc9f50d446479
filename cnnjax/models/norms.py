"""Normalisation layers a model can use instead of BatchNorm: `model_overrides.norm=`.

* `batch` — Flax's `nn.BatchNorm` (the default; every model's parameters and outputs are unchanged).
* `batch_renorm` — batch renormalisation (Ioffe 2017): in training the batch-normalised value is corrected
  towards the running statistics, x_hat = (x - mu_B) / sigma_B * r + d with r = clip(sigma_B / sigma,
  1/r_max, r_max), d = clip((mu_B - mu) / sigma, -d_max, d_max), both treated as constants by the gradient,
  so training and inference see the same normalisation even with small or non-i.i.d. batches. With
  r_max=1, d_max=0 it is BatchNorm. Its running statistics live in `batch_stats` under BatchNorm's names
  and are synchronised over the mesh axis exactly like BatchNorm's.
* `group` — GroupNorm (Wu & He 2018): per example, statistics over H, W and the channels of each group.
* `layer` — LayerNorm over H, W, C per example, a per-channel affine (GroupNorm with one group).

`group` and `layer` keep no running statistics (no `batch_stats`) and never mix examples of a batch, so a
model using them behaves the same for any batch size and device count. Every layer here takes BatchNorm's
`scale_init` (blocks zero-initialise their last norm's scale) and names its parameters `scale`/`bias`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

NORMS = ("batch", "batch_renorm", "group", "layer")


def group_count(channels: int, groups: int) -> int:
    """The number of groups for `channels`: `groups` if it divides them, else the largest divisor of
    `channels` below `groups` (e.g. 24 channels, groups=32 -> 24; 48 channels, groups=32 -> 24), so a
    narrow layer never fails and a group never straddles channels of unequal count."""
    return max(d for d in range(1, min(groups, channels) + 1) if channels % d == 0)


def _moments(x: jax.Array, axes: tuple[int, ...], axis_name: str | None = None) -> tuple[jax.Array, jax.Array]:
    """Mean and (biased) variance over `axes` in float32, averaged over the devices of `axis_name` first:
    E[x] and E[x^2] are pmean-ed, as Flax's BatchNorm does, so N devices equal one device on the whole batch."""
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    mean, mean2 = jnp.mean(x, axes), jnp.mean(jnp.square(x), axes)
    if axis_name is not None:
        mean, mean2 = jax.lax.pmean((mean, mean2), axis_name)
    return mean, jnp.maximum(mean2 - jnp.square(mean), 0.0)


class _Affine(nn.Module):
    """Per-channel scale and bias after a normalisation, BatchNorm's parameter names and initialisers."""

    scale_init: Callable[..., jax.Array] = nn.initializers.ones
    bias_init: Callable[..., jax.Array] = nn.initializers.zeros
    dtype: Any = None

    def affine(self, y: jax.Array, x: jax.Array) -> jax.Array:
        channels = (x.shape[-1],)
        y = y * self.param("scale", self.scale_init, channels) + self.param("bias", self.bias_init, channels)
        return y.astype(self.dtype or x.dtype)


class BatchRenorm(_Affine):
    """Batch renormalisation; `batch_stats` {mean, var} updated like BatchNorm's (running = momentum *
    running + (1 - momentum) * batch). Evaluation normalises with the running statistics, as BatchNorm."""

    use_running_average: bool = False
    momentum: float = 0.9
    epsilon: float = 1e-5
    r_max: float = 3.0  # Ioffe's final values; r_max=1, d_max=0 is BatchNorm
    d_max: float = 5.0
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        axes, channels = tuple(range(x.ndim - 1)), (x.shape[-1],)
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, channels, jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, channels, jnp.float32)
        x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        if self.use_running_average:
            y = (x32 - ra_mean.value) * jax.lax.rsqrt(ra_var.value + self.epsilon)
            return self.affine(y, x)
        initializing = self.is_initializing()
        mean, var = _moments(x32, axes, None if initializing else self.axis_name)
        inv_batch = jax.lax.rsqrt(var + self.epsilon)
        running_std = jnp.sqrt(ra_var.value + self.epsilon)
        r = jax.lax.stop_gradient(jnp.clip(running_std * inv_batch, 1.0 / self.r_max, self.r_max))
        d = jax.lax.stop_gradient(jnp.clip((mean - ra_mean.value) / running_std, -self.d_max, self.d_max))
        if not initializing:
            ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
            ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
        return self.affine((x32 - mean) * (inv_batch * r) + d, x)


class GroupNorm(_Affine):
    """Per example, normalise each group of `group_count(C, groups)` channels over H, W and its channels;
    `groups=1` is LayerNorm over H, W, C. No running statistics: training and evaluation are the same map."""

    groups: int = 32
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        g = group_count(x.shape[-1], self.groups)
        x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        grouped = x32.reshape(*x.shape[:-1], g, x.shape[-1] // g)
        axes = tuple(range(1, x.ndim - 1)) + (x.ndim,)  # all but the batch and group axes
        mean, var = _moments(grouped, axes)
        mean, var = jnp.expand_dims(mean, axes), jnp.expand_dims(var, axes)
        y = ((grouped - mean) * jax.lax.rsqrt(var + self.epsilon)).reshape(x.shape)
        return self.affine(y, x)


def norm_factory(kind: str, train: bool, *, momentum: float, epsilon: float, axis_name: str | None,
                 dtype: Any, groups: int, r_max: float, d_max: float) -> Callable[..., nn.Module]:
    """The `Ops.norm` partial of a model: `kind` in NORMS with the model's BN settings (momentum, epsilon,
    axis) where they apply. `batch` builds exactly the `nn.BatchNorm` every model used before."""
    if kind == "batch":
        return functools.partial(nn.BatchNorm, use_running_average=not train, momentum=momentum, epsilon=epsilon,
                                 axis_name=axis_name if train else None, dtype=dtype)
    if kind == "batch_renorm":
        return functools.partial(BatchRenorm, use_running_average=not train, momentum=momentum, epsilon=epsilon,
                                 axis_name=axis_name if train else None, dtype=dtype, r_max=r_max, d_max=d_max)
    if kind in ("group", "layer"):
        return functools.partial(GroupNorm, groups=groups if kind == "group" else 1, epsilon=epsilon, dtype=dtype)
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {kind!r}")
