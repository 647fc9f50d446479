"""The activation catalogue (seed 004): selectable by name for any model via `act=`.

Activations are modules, not functions, because two of them are not pure maps: PReLU learns a slope
per channel and RReLU draws a random slope per element while training (from the `dropout` rng stream)
and uses the mean slope at test time.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

_STATELESS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "identity": lambda x: x,
    "sigmoid": nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": nn.relu,
    "relu6": nn.relu6,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "swish": nn.swish,
    "silu": nn.swish,
    "hard_swish": nn.hard_swish,
}
ACTIVATIONS = tuple(sorted([*_STATELESS, "leaky_relu", "prelu", "rrelu"]))

RRELU_LOWER, RRELU_UPPER = 1.0 / 8.0, 1.0 / 3.0


class Activation(nn.Module):
    """A named activation. `slope` is leaky_relu's negative slope and PReLU's initial slope."""

    kind: str = "relu"
    train: bool = False
    slope: float = 0.01
    rrelu_range: tuple[float, float] = (RRELU_LOWER, RRELU_UPPER)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.kind in _STATELESS:
            return _STATELESS[self.kind](x)
        if self.kind == "leaky_relu":
            return jnp.where(x >= 0, x, self.slope * x)
        if self.kind == "prelu":
            alpha = self.param("alpha", nn.initializers.constant(self.slope), (x.shape[-1],), jnp.float32)
            return jnp.where(x >= 0, x, alpha.astype(x.dtype) * x)
        if self.kind == "rrelu":
            lo, hi = self.rrelu_range
            if self.train:
                a = jax.random.uniform(self.make_rng("dropout"), x.shape, x.dtype, lo, hi)
            else:
                a = jnp.asarray((lo + hi) / 2, x.dtype)
            return jnp.where(x >= 0, x, a * x)
        raise ValueError(f"unknown activation {self.kind!r}; choose one of {', '.join(ACTIVATIONS)}")


def check_activation(kind: str) -> str:
    if kind not in ACTIVATIONS:
        raise ValueError(f"unknown activation {kind!r}; choose one of {', '.join(ACTIVATIONS)}")
    return kind
