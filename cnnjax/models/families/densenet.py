"""DenseNet-BC (Huang et al. 2017): every layer of a dense block sees the concatenation of all earlier ones.

Layers are pre-activation bottlenecks, BN-act-conv1x1(bn_size*k)-BN-act-conv3x3(k), each adding k ("growth
rate") channels; transitions BN-act-conv1x1 compress the channels by `compression` and halve the
resolution with a 2x2 average pool. The ImageNet models follow torchvision's layout and module names
(conv0/norm0, denseblockN/denselayerM, transitionN, norm5, classifier): densenet121/169/201 have
7,978,856 / 14,149,480 / 20,013,928 parameters. densenet_bc100_k12 is the CIFAR model of the paper
(L=100, k=12, 3 blocks of 16 bottleneck layers, 3x3 stem of 2k channels): 769,162 parameters for 10 classes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

import flax.linen as nn

from cnnjax.models.layers import Classifier, Ops, global_avg_pool
from cnnjax.models.window_pool import avg_pool, max_pool
from cnnjax.models.registry import CIFAR_STATS, register_model


class DenseLayer(nn.Module):
    """BN-act-conv1x1 bottleneck then BN-act-conv3x3; returns only the `growth` new channels."""

    ops: Ops
    growth: int
    bn_size: int = 4
    drop_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        ops = self.ops
        y = ops.conv(self.bn_size * self.growth, (1, 1), name="conv1")(ops.act()(ops.norm(name="norm1")(x)))
        y = ops.conv(self.growth, (3, 3), padding=1, name="conv2")(ops.act()(ops.norm(name="norm2")(y)))
        if self.drop_rate > 0:
            y = ops.dropout(self.drop_rate)(y)
        return y


class DenseBlock(nn.Module):
    """`num_layers` dense layers; the output concatenates the input and every layer's output, in order."""

    ops: Ops
    num_layers: int
    growth: int
    bn_size: int = 4
    drop_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i in range(self.num_layers):
            new = DenseLayer(self.ops, self.growth, self.bn_size, self.drop_rate, name=f"denselayer{i + 1}")(x)
            x = jnp.concatenate([x, new], axis=-1)
        return x


class Transition(nn.Module):
    """BN-act-conv1x1 to `features` channels, then 2x2 average pooling (stride 2)."""

    ops: Ops
    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        ops = self.ops
        x = ops.conv(self.features, (1, 1), name="conv")(ops.act()(ops.norm(name="norm")(x)))
        return avg_pool(x, 2)


class DenseNet(Classifier):
    """`stem="imagenet"`: conv7x7/2-BN-act-maxpool3x3/2 (torchvision); `stem="cifar"`: a single conv3x3."""

    growth_rate: int = 32
    block_config: tuple[int, ...] = (6, 12, 24, 16)
    num_init_features: int = 64
    bn_size: int = 4
    compression: float = 0.5
    drop_rate: float = 0.0
    stem: str = "imagenet"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        ops = self.ops(train)
        if self.stem == "imagenet":
            x = ops.conv(self.num_init_features, (7, 7), strides=2, padding=3, name="conv0")(x)
            x = ops.act()(ops.norm(name="norm0")(x))
            x = max_pool(x, 3, 2, padding=((1, 1), (1, 1)))
        elif self.stem == "cifar":
            x = ops.conv(self.num_init_features, (3, 3), padding=1, name="conv0")(x)
        else:
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {self.stem!r}")
        for i, num_layers in enumerate(self.block_config):
            x = DenseBlock(ops, num_layers, self.growth_rate, self.bn_size, self.drop_rate,
                           name=f"denseblock{i + 1}")(x)
            if i < len(self.block_config) - 1:
                x = Transition(ops, int(x.shape[-1] * self.compression), name=f"transition{i + 1}")(x)
        x = ops.act()(ops.norm(name="norm5")(x))
        return ops.dense(self.num_classes, name="classifier")(global_avg_pool(x))


IMAGENET_CONFIGS: dict[str, tuple[int, ...]] = {
    "densenet121": (6, 12, 24, 16),
    "densenet169": (6, 12, 32, 32),
    "densenet201": (6, 12, 48, 32),
}


for _name, _config in IMAGENET_CONFIGS.items():
    register_model(_name, functools.partial(DenseNet, block_config=_config), family="densenet",
                   input_shape=(224, 224, 3), min_input_size=32, torchvision=_name,
                   reference="Huang et al. 2017; torchvision densenet.py")
register_model("densenet_bc100_k12",
               functools.partial(DenseNet, growth_rate=12, block_config=(16, 16, 16), num_init_features=24,
                                 stem="cifar"),
               family="densenet", input_shape=(32, 32, 3), num_classes=10, min_input_size=4,
               reference="Huang et al. 2017, DenseNet-BC (L=100, k=12), liuzhuang13/DenseNet", **CIFAR_STATS)
