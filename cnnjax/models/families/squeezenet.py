"""SqueezeNet 1.0 (Iandola et al. 2016) and 1.1 (the repository's cheaper revision), torchvision layout.

A Fire module squeezes to few channels with a 1x1 convolution, then expands with parallel 1x1 and 3x3
convolutions whose outputs are concatenated (1x1 first). There is no fully connected layer: the classifier
is dropout -> 1x1 convolution to the classes -> ReLU -> global average pool. All convolutions have biases,
max-pools are 3x3/2 with ceil_mode. 1.0: conv1 96@7x7/2, pools after conv1, fire4, fire8 (1,248,424
parameters); 1.1: conv1 64@3x3/2, pools after conv1, fire3, fire5 (1,235,496), 2.4x less compute.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnjax.models.layers import Classifier, Ops, global_avg_pool
from cnnjax.models.window_pool import max_pool
from cnnjax.models.pooling import Window, check_input_size, smallest_input
from cnnjax.models.registry import register_model

POOL = Window(3, 2, 0, ceil_mode=True)
# version -> (conv1 filters, conv1 kernel, body); body items are "pool" or (squeeze, expand) of a Fire
# module whose 1x1 and 3x3 expansions each have `expand` filters. Fires are numbered from 2 (the paper's
# fire2..fire9), so conv10 is the classifier.
VERSIONS: dict[str, tuple[int, int, tuple]] = {
    "1_0": (96, 7, ("pool", (16, 64), (16, 64), (32, 128), "pool", (32, 128), (48, 192), (48, 192),
                    (64, 256), "pool", (64, 256))),
    "1_1": (64, 3, ("pool", (16, 64), (16, 64), "pool", (32, 128), (32, 128), "pool", (48, 192), (48, 192),
                    (64, 256), (64, 256))),
}


def windows(version: str) -> list[Window]:
    _, kernel, body = VERSIONS[version]
    return [Window(kernel, 2)] + [POOL for item in body if item == "pool"]


class Fire(nn.Module):
    ops: Ops
    squeeze: int
    expand: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        ops = self.ops
        x = ops.act()(ops.conv(self.squeeze, (1, 1), use_bias=True, name="squeeze")(x))
        e1 = ops.act()(ops.conv(self.expand, (1, 1), use_bias=True, name="expand1x1")(x))
        e3 = ops.act()(ops.conv(self.expand, (3, 3), padding=1, use_bias=True, name="expand3x3")(x))
        return jnp.concatenate([e1, e3], axis=-1)


class SqueezeNet(Classifier):
    version: str = "1_0"
    dropout: float = 0.5

    def applied_options(self) -> frozenset[str]:
        return frozenset()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if self.version not in VERSIONS:
            raise ValueError(f"SqueezeNet version must be one of {', '.join(VERSIONS)}, got {self.version!r}")
        check_input_size(x, smallest_input(windows(self.version)), f"squeezenet{self.version}")
        ops = self.ops(train)
        filters, kernel, body = VERSIONS[self.version]
        x = ops.conv(filters, (kernel, kernel), strides=2, padding="VALID", use_bias=True, name="conv1")(x)
        x = ops.act()(x)
        fire = 2
        for item in body:
            if item == "pool":
                x = max_pool(x, POOL.kernel, POOL.stride, ceil_mode=True)
            else:
                x = Fire(ops, *item, name=f"fire{fire}")(x)
                fire += 1
        x = ops.dropout(self.dropout)(x)
        x = ops.act()(ops.conv(self.num_classes, (1, 1), use_bias=True, name="conv10")(x))
        return global_avg_pool(x)


for _version in VERSIONS:
    _reference = "Iandola et al. 2016" + (" (v1.1, forresti/SqueezeNet)" if _version == "1_1" else "")
    register_model(f"squeezenet{_version}", functools.partial(SqueezeNet, version=_version),
                   family="squeezenet", input_shape=(224, 224, 3),
                   min_input_size=smallest_input(windows(_version)), torchvision=f"squeezenet{_version}",
                   reference=_reference)
