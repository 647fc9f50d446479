"""Dead ReLUs (seed 002/003): units never active on a fixed probe batch, as a fraction per ReLU layer.

A ReLU unit (a channel of a conv layer, a neuron of a dense one) whose output is zero for every example
and position of the probe batch gets no gradient and, with too high a learning rate or a bad
initialisation, stays dead. The outputs of every relu/relu6 `Activation` are captured in one inference
pass (`capture_intermediates`), so it works for any model of the zoo built with `Ops.act`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.models.activations import Activation

RELUS = ("relu", "relu6")


def _is_relu(module: nn.Module, method_name: str) -> bool:
    return method_name == "__call__" and isinstance(module, Activation) and module.kind in RELUS


def dead_fractions_fn(model: nn.Module):
    """A jitted f(variables, images) -> {layer path: fraction of its units never > 0 on `images`}."""

    @jax.jit
    def fractions(variables: dict[str, Any], images: jax.Array) -> dict[str, jax.Array]:
        _, state = model.apply(variables, images, train=False, capture_intermediates=_is_relu,
                               mutable=["intermediates"])
        out = {}
        for path, value in jax.tree_util.tree_leaves_with_path(state.get("intermediates", {})):
            names = [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]
            layer = "/".join(n for n in names if n not in ("__call__", "0"))
            alive = jnp.any(value.reshape(-1, value.shape[-1]) > 0, axis=0)
            out[layer] = jnp.sum(~alive) / alive.size
        return out

    return fractions


def dead_fractions(model: nn.Module, variables: dict[str, Any], images: jax.Array) -> dict[str, float]:
    """{layer: fraction of dead units} for the relu layers of `model` on `images` (empty without ReLUs)."""
    return {k: float(np.asarray(v)) for k, v in dead_fractions_fn(model)(variables, images).items()}
