"""The weight-initialisation catalogue (seed 004), selectable by name for any model via `init=`.

`zeros` and `small` exist to demonstrate why they fail (symmetry; vanishing activations), `lecun`,
`glorot` and `he` are the variance-preserving choices; `he_fan_out` is torchvision's ResNet/VGG init and
`torch_default` PyTorch's layer default (kaiming-uniform with a=sqrt(5), i.e. U(+-1/sqrt(fan_in))).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def _small(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    return 0.001 * jax.random.normal(key, shape, dtype)


INITIALIZERS = {
    "zeros": nn.initializers.zeros,
    "small": _small,
    "lecun": nn.initializers.variance_scaling(1.0, "fan_in", "normal"),
    "glorot": nn.initializers.variance_scaling(1.0, "fan_avg", "uniform"),
    "he": nn.initializers.variance_scaling(2.0, "fan_in", "normal"),
    "he_fan_out": nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
    "torch_default": nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
}


def initializer(name: str) -> nn.initializers.Initializer:
    """Kernel initialiser by name; unknown names raise with the list of choices."""
    try:
        return INITIALIZERS[name]
    except KeyError:
        raise ValueError(f"unknown init {name!r}; choose one of {', '.join(INITIALIZERS)}") from None
