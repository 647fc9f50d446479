"""Blocks shared by several model families, so no family imports another family's module.

* Mobile: `ConvBN` (torchvision's Conv2dNormActivation), `InvertedResidual` (MobileNet v2's block and, with
  squeeze-excitation and `StochasticDepth`, EfficientNet's MBConv). ShuffleNet builds on `ConvBN`.
* Residual: `ResidualBlock`, the post-activation basic/bottleneck block of the ImageNet and CIFAR ResNets
  (shortcut option A or B), and `PreActBlock` of the pre-activation and Wide ResNets; `stage_stride`.
  Both drop their residual branch with `StochasticDepth` (`drop_path`, rates from `linear_drop_rate`) and
  put the model's spatial dropout after the activations inside the branch.
* Classic: `fc_head`, the fc6/fc7/fc8 classifier of AlexNet/ZFNet and VGG.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnjax.models.layers import Ops, flatten
from cnnjax.models.squeeze_excite import SqueezeExcite

SHORTCUTS = ("A", "B")


class ConvBN(nn.Module):
    """conv-BN-[act] with padding (k-1)//2: torchvision's Conv2dNormActivation. Children: `conv`, `bn`."""

    ops: Ops
    features: int
    kernel: int = 1
    stride: int = 1
    depthwise: bool = False  # one filter per input channel (feature_group_count = input channels)
    act: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        groups = x.shape[-1] if self.depthwise else 1
        x = self.ops.conv(self.features, (self.kernel, self.kernel), strides=self.stride,
                          padding=(self.kernel - 1) // 2, feature_group_count=groups, name="conv")(x)
        x = self.ops.norm(name="bn")(x)
        return self.ops.act()(x) if self.act else x


class StochasticDepth(nn.Module):
    """Drops a residual branch for whole examples with probability `rate` while training (torchvision's
    "row" mode), scaling the survivors by 1/(1-rate); the identity at evaluation. Uses the 'dropout' rng."""

    rate: float
    deterministic: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.deterministic or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        if keep <= 0.0:
            return jnp.zeros_like(x)
        mask = jax.random.bernoulli(self.make_rng("dropout"), keep, (x.shape[0],) + (1,) * (x.ndim - 1))
        return jnp.where(mask, x / keep, jnp.zeros_like(x))


class InvertedResidual(nn.Module):
    """1x1 expand (skipped when the ratio leaves the width unchanged) -> depthwise kxk -> [SE] -> linear
    1x1 projection, plus the input when stride is 1 and widths match. Children: expand, dw, se, project."""

    ops: Ops
    features: int
    stride: int = 1
    expand_ratio: float = 6.0
    kernel: int = 3
    se_channels: int = 0  # squeeze width of a squeeze-excitation (model act inside, sigmoid gate); 0: none
    drop_path: float = 0.0  # stochastic depth rate of the residual branch

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        ops, width = self.ops, x.shape[-1]
        hidden = int(round(width * self.expand_ratio))
        y = ConvBN(ops, hidden, name="expand")(x) if hidden != width else x
        y = ConvBN(ops, hidden, self.kernel, self.stride, depthwise=True, name="dw")(y)
        if self.se_channels:
            y = SqueezeExcite(ops, squeeze_channels=self.se_channels, name="se")(y)
        y = ConvBN(ops, self.features, act=False, name="project")(y)
        if self.stride == 1 and width == self.features:
            y = StochasticDepth(self.drop_path, deterministic=not ops.train)(y) + x
        return y


def linear_drop_rate(max_rate: float, index: int, total: int) -> float:
    """Stochastic depth's linear decay rule (Huang et al. 2016, p_l = 1 - l/L (1 - p_L)) as a drop rate:
    block `index` (0-based) of `total` drops with `max_rate * (index + 1) / total`; the last with max_rate."""
    return max_rate * (index + 1) / total


def stage_stride(stage: int, index: int) -> int:
    """Stage 0 keeps the stem's resolution; every later stage halves it in its first block."""
    return 2 if stage > 0 and index == 0 else 1


def shortcut_a(x: jax.Array, filters: int, stride: int) -> jax.Array:
    """Identity with stride-s subsampling and zero channels appended (option A): no parameters."""
    if stride > 1:
        x = x[:, ::stride, ::stride, :]
    extra = filters - x.shape[-1]
    if extra > 0:
        x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
    return x


class ResidualBlock(nn.Module):
    """Post-activation residual block: act(branch(x) + shortcut(x)), BN after every conv.

    Basic: 3x3(stride) - 3x3. Bottleneck: 1x1 - 3x3(stride, groups) - 1x1 to 4*planes channels, with
    inner width `planes * width_per_group / 64 * groups` (torchvision's ResNeXt/Wide formula). Where the
    shape changes, `shortcut="B"` projects with a 1x1 conv + BN (torchvision), `"A"` subsamples and
    zero-pads channels (the CIFAR ResNets of the paper). Children are named like torchvision's (conv1, bn1,
    ..., downsample_conv/_bn, se) for readable weight conversion; `auto_names` keeps Flax's automatic names
    (Conv_0, BatchNorm_0, ...) instead, the parameter layout of the CIFAR ResNets' checkpoints.
    """

    ops: Ops
    planes: int
    stride: int = 1
    bottleneck: bool = False
    groups: int = 1
    width_per_group: int = 64
    stride_in_1x1: bool = False  # ResNet v1
    se_reduction: int | None = None
    zero_init_last: bool = False  # zero gamma of the last BN: the block starts as the identity
    shortcut: str = "B"
    auto_names: bool = False
    drop_path: float = 0.0  # stochastic depth: rate of dropping the branch (the block is then its shortcut)

    @property
    def out_channels(self) -> int:
        return self.planes * (4 if self.bottleneck else 1)

    def branch_layers(self) -> list[tuple[int, int, int, int]]:
        """(kernel, features, stride, groups) of the residual branch's convolutions, in order."""
        if not self.bottleneck:
            return [(3, self.planes, self.stride, 1), (3, self.planes, 1, 1)]
        width = int(self.planes * self.width_per_group / 64) * self.groups
        s1, s3 = (self.stride, 1) if self.stride_in_1x1 else (1, self.stride)
        return [(1, width, s1, 1), (3, width, s3, self.groups), (1, self.out_channels, 1, 1)]

    def _name(self, name: str) -> str | None:
        return None if self.auto_names else name

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be 'A' or 'B', got {self.shortcut!r}")
        ops = self.ops
        layers = self.branch_layers()
        y = x
        for i, (kernel, features, stride, groups) in enumerate(layers, 1):
            y = ops.conv(features, (kernel, kernel), strides=stride, padding=kernel // 2,
                         feature_group_count=groups, name=self._name(f"conv{i}"))(y)
            last = i == len(layers)
            gamma = nn.initializers.zeros if last and self.zero_init_last else nn.initializers.ones
            y = ops.norm(scale_init=gamma, name=self._name(f"bn{i}"))(y)
            if not last:
                y = ops.spatial_dropout()(ops.act()(y))
        if self.se_reduction:
            y = SqueezeExcite(ops, self.se_reduction, name=self._name("se"))(y)
        y = StochasticDepth(self.drop_path, deterministic=not ops.train)(y)
        residual = x
        if self.stride != 1 or x.shape[-1] != self.out_channels:
            if self.shortcut == "A":
                residual = shortcut_a(x, self.out_channels, self.stride)
            else:
                residual = ops.conv(self.out_channels, (1, 1), strides=self.stride,
                                    name=self._name("downsample_conv"))(x)
                residual = ops.norm(name=self._name("downsample_bn"))(residual)
        return ops.act()(y + residual)


class PreActBlock(nn.Module):
    """Full pre-activation basic block (He et al. 2016b): x + conv(act(BN(conv(act(BN(x)))))).

    Where the shape changes the 1x1 projection (no BN) reads the pre-activated input, like
    fb.resnet.torch's 'both_preact' blocks and the Wide ResNets. `preact_input=False` skips the first
    BN-act, for a block that directly follows a stem ending in BN-act ('no_preact'). `dropout` sits
    between the two convolutions (Wide ResNets).
    """

    ops: Ops
    filters: int
    stride: int = 1
    dropout: float = 0.0
    preact_input: bool = True
    drop_path: float = 0.0  # stochastic depth: rate of dropping the branch (the block is then its shortcut)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        ops = self.ops
        pre = ops.act()(ops.norm(name="bn1")(x)) if self.preact_input else x
        y = ops.conv(self.filters, (3, 3), strides=self.stride, padding=1, name="conv1")(pre)
        y = ops.spatial_dropout()(ops.act()(ops.norm(name="bn2")(y)))
        if self.dropout:
            y = ops.dropout(self.dropout)(y)
        y = ops.conv(self.filters, (3, 3), padding=1, name="conv2")(y)
        y = StochasticDepth(self.drop_path, deterministic=not ops.train)(y)
        if self.stride != 1 or x.shape[-1] != self.filters:
            return y + ops.conv(self.filters, (1, 1), strides=self.stride, name="shortcut")(pre)
        return y + x


def fc_head(ops: Ops, x: jax.Array, num_classes: int, dropout: float, dropout_first: bool = False,
            widths: tuple[int, ...] = (4096, 4096)) -> jax.Array:
    """AlexNet's classifier, reused by VGG: hidden Dense+act layers named fc6, fc7, ..., then the logits."""
    x = flatten(x)
    first = 6
    for i, width in enumerate(widths):
        if dropout_first:
            x = ops.dropout(dropout)(x)
        x = ops.act()(ops.dense(width, name=f"fc{first + i}")(x))
        if not dropout_first:
            x = ops.dropout(dropout)(x)
    return ops.dense(num_classes, name=f"fc{first + len(widths)}")(x)
