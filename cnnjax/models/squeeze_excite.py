"""Squeeze-and-Excitation (Hu et al. 2018): re-weight channels by a gate computed from their global means.

squeeze = global average pool -> 1x1 conv (C -> C/r, bias) -> act -> 1x1 conv (C/r -> C, bias) -> gate,
and the input is multiplied by the gate channel-wise. The two "fully connected" layers are 1x1
convolutions named `fc1`/`fc2`, as in torchvision's `SqueezeExcitation` and timm's `SEModule`, so their
weights convert with the plain `conv()` rows. SE-ResNet uses r=16, ReLU and sigmoid; EfficientNet
passes `squeeze_channels` (a quarter of the *block input* channels) and SiLU; MobileNetV3 a hard-sigmoid
gate.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnjax.models.layers import ModuleFactory, Ops


class SqueezeExcite(nn.Module):
    """Channel gate; `squeeze_channels` (if given) overrides `channels // reduction`.

    `act` defaults to the model's activation (`ops.act`); `gate` is the squashing function of the gate.
    """

    ops: Ops
    reduction: int = 16
    squeeze_channels: int | None = None
    act: ModuleFactory | None = None
    gate: Callable[[jax.Array], jax.Array] = nn.sigmoid

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        hidden = self.squeeze_channels or max(1, channels // self.reduction)
        s = jnp.mean(x, axis=(1, 2), keepdims=True)
        s = self.ops.conv(hidden, (1, 1), use_bias=True, name="fc1")(s)
        s = (self.act or self.ops.act)()(s)
        s = self.ops.conv(channels, (1, 1), use_bias=True, name="fc2")(s)
        return x * self.gate(s)
