"""Penalties and constraints on the weights beyond L2 weight decay: L1 (the elastic net with L2) and max-norm.

L1 is a gradient term (an optax transformation, beside `optax.add_decayed_weights`). Max-norm is a constraint,
not a gradient term: it projects the parameters after the update (projected gradient descent), so it is a
function of the parameters applied by the train step after `optax.apply_updates` — not an optax
transformation, which could only return an update `proj(p + u) - p` whose sum with `p` is rounded again and
so may land a float32 ulp outside the ball; the projection also sees the update after the plateau scale.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax


def add_l1_subgradient(penalty: float, mask: Any | Callable[[Any], Any]) -> optax.GradientTransformation:
    """Adds penalty * sign(w) — the (sub)gradient of penalty * |w|, 0 at w = 0 — to the masked leaves."""
    def update(updates, state, params=None):
        if params is None:
            raise ValueError("the L1 penalty needs the parameters: call tx.update(grads, state, params)")
        return jax.tree.map(lambda u, p: u + penalty * jnp.sign(p).astype(u.dtype), updates, params), state

    return optax.masked(optax.GradientTransformation(lambda params: optax.EmptyState(), update), mask)


def incoming_norms(kernel: jax.Array) -> jax.Array:
    """Per output unit, the L2 norm of its incoming weights: over every axis but the last, so Dense (in, out)
    -> (out,) and Conv (kh, kw, cin, cout) -> (cout,) (depthwise: (kh, kw, 1) per channel)."""
    return jnp.sqrt(jnp.sum(jnp.square(kernel), axis=tuple(range(kernel.ndim - 1))))


def max_norm_project(params: Any, max_norm: float) -> Any:
    """Scales every unit of every conv/dense kernel whose incoming norm exceeds `max_norm` back onto the ball
    (Srivastava et al.; seed 004: "clamping the weight vector of every neuron"); other leaves unchanged."""
    def project(path, leaf: jax.Array) -> jax.Array:
        if getattr(path[-1], "key", None) != "kernel" or leaf.ndim < 2:
            return leaf
        norms = incoming_norms(leaf)
        return leaf * jnp.minimum(1.0, max_norm / jnp.maximum(norms, jnp.finfo(leaf.dtype).tiny)).astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(project, params)
