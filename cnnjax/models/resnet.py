"""ImageNet ResNets (He et al. 2016) and relatives: ResNeXt, Wide ResNet-50-2, SE-ResNet-50, pre-activation.

One post-activation block covers the basic (two 3x3) and bottleneck (1x1-3x3-1x1) layouts, so the
variants are rows of a config table: ResNeXt sets `groups`/`width_per_group`, Wide ResNet-50-2 doubles
`width_per_group`, SE-ResNet adds a squeeze-excitation gate on the residual before the addition.

Conventions follow torchvision (parameter counts match exactly): no conv biases, BatchNorm after every
convolution, "option B" shortcuts (1x1 conv + BN only where the shape changes), kaiming-normal fan-out
init. `version="v1.5"` (torchvision, default) puts a bottleneck's stride in its 3x3 conv; `version="v1"`
(the paper, Caffe, Keras) in its first 1x1 conv: same parameters, ~6% fewer MACs for ResNet-50 (the
3x3 then runs at the reduced resolution), slightly lower accuracy. The 7x7/2 stem, the 3x3/2 max-pool and
three stride-2 stages downsample 32x, so 32x32 is the smallest input (1x1 final feature map).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from cnnjax.models.layers import Classifier, Ops, global_avg_pool, max_pool
from cnnjax.models.registry import register_model
from cnnjax.models.squeeze_excite import SqueezeExcite

VERSIONS = ("v1", "v1.5")
STAGE_SIZES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
STAGE_PLANES = (64, 128, 256, 512)


def imagenet_stem(ops: Ops, x: jax.Array) -> jax.Array:
    """conv 7x7/2 (64) - BN - act - max-pool 3x3/2 (pad 1): 4x downsampling."""
    x = ops.conv(64, (7, 7), strides=2, padding=3, name="conv1")(x)
    x = ops.act()(ops.norm(name="bn1")(x))
    return max_pool(x, 3, 2, padding=((1, 1), (1, 1)))


def stage_stride(stage: int, index: int) -> int:
    """Stage 0 keeps the stem's resolution; every later stage halves it in its first block."""
    return 2 if stage > 0 and index == 0 else 1


class ResidualBlock(nn.Module):
    """Post-activation residual block: act(branch(x) + shortcut(x)), BN after every conv.

    Basic: 3x3(stride) - 3x3. Bottleneck: 1x1 - 3x3(stride, groups) - 1x1 to 4*planes channels, with
    inner width `planes * width_per_group / 64 * groups` (torchvision's ResNeXt/Wide formula). Submodule
    names follow torchvision (conv1, bn1, ..., downsample_conv/_bn, se) for readable weight conversion.
    The basic layout computes what `resnet_cifar.BasicBlock(shortcut="B")` does; this block adds those
    names and `zero_init_last`, which the CIFAR block lacks.
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

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        ops = self.ops
        layers = self.branch_layers()
        y = x
        for i, (kernel, features, stride, groups) in enumerate(layers, 1):
            y = ops.conv(features, (kernel, kernel), strides=stride, padding=kernel // 2,
                         feature_group_count=groups, name=f"conv{i}")(y)
            last = i == len(layers)
            gamma = nn.initializers.zeros if last and self.zero_init_last else nn.initializers.ones
            y = ops.norm(scale_init=gamma, name=f"bn{i}")(y)
            if not last:
                y = ops.act()(y)
        if self.se_reduction:
            y = SqueezeExcite(ops, self.se_reduction, name="se")(y)
        residual = x
        if self.stride != 1 or x.shape[-1] != self.out_channels:
            residual = ops.conv(self.out_channels, (1, 1), strides=self.stride, name="downsample_conv")(x)
            residual = ops.norm(name="downsample_bn")(residual)
        return ops.act()(y + residual)


class ResNet(Classifier):
    """stem - 4 stages of residual blocks (64/128/256/512 planes) - global average pool - fc."""

    stage_sizes: tuple[int, ...] = STAGE_SIZES[18]
    bottleneck: bool = False
    groups: int = 1
    width_per_group: int = 64
    se_reduction: int | None = None
    version: str = "v1.5"
    zero_init_residual: bool = False
    weight_init: str = "he_fan_out"  # torchvision: kaiming_normal_(mode="fan_out")

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if self.version not in VERSIONS:
            raise ValueError(f"version must be one of {VERSIONS}, got {self.version!r}")
        ops = self.ops(train)
        x = imagenet_stem(ops, x)
        for stage, blocks in enumerate(self.stage_sizes):
            for i in range(blocks):
                x = ResidualBlock(
                    ops, STAGE_PLANES[stage], stage_stride(stage, i), self.bottleneck, self.groups,
                    self.width_per_group, self.version == "v1", self.se_reduction, self.zero_init_residual,
                    name=f"layer{stage + 1}_{i}")(x)
        return ops.dense(self.num_classes, name="fc")(global_avg_pool(x))


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

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        ops = self.ops
        pre = ops.act()(ops.norm(name="bn1")(x)) if self.preact_input else x
        y = ops.conv(self.filters, (3, 3), strides=self.stride, padding=1, name="conv1")(pre)
        y = ops.act()(ops.norm(name="bn2")(y))
        if self.dropout:
            y = ops.dropout(self.dropout)(y)
        y = ops.conv(self.filters, (3, 3), padding=1, name="conv2")(y)
        if self.stride != 1 or x.shape[-1] != self.filters:
            return y + ops.conv(self.filters, (1, 1), strides=self.stride, name="shortcut")(pre)
        return y + x


class PreActResNet(Classifier):
    """Pre-activation ResNet (He et al. 2016b, fb.resnet.torch `preresnet.lua`), basic blocks.

    Same stem as ResNet (conv-BN-act-pool), so the first block skips its own pre-activation; a final
    BN-act precedes the pooling because the last block's output is a raw sum. preact_resnet18 has
    11,687,720 parameters, 1,792 fewer than resnet18 (11,689,512), all BatchNorm (gamma+beta per channel):
    resnet18 normalises every conv output plus the three projection shortcuts (4,736 block channels);
    the pre-activation blocks normalise each block's *input* and middle (64 fewer at the first block,
    which reuses the stem's BN; 64+128+256 fewer where a stage widens; no BN on the projections:
    3,328 channels) and add one final BN of 512: 4,736 - 3,328 - 512 = 896 channels = 1,792 parameters.
    """

    stage_sizes: tuple[int, ...] = STAGE_SIZES[18]
    weight_init: str = "he_fan_out"  # fb.resnet.torch: normal(0, sqrt(2 / (k*k*out_channels)))

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        ops = self.ops(train)
        x = imagenet_stem(ops, x)
        for stage, blocks in enumerate(self.stage_sizes):
            for i in range(blocks):
                x = PreActBlock(ops, STAGE_PLANES[stage], stage_stride(stage, i),
                                preact_input=stage > 0 or i > 0, name=f"layer{stage + 1}_{i}")(x)
        x = ops.act()(ops.norm(name="bn_final")(x))
        return ops.dense(self.num_classes, name="fc")(global_avg_pool(x))


_B = dict(bottleneck=True)
_PAPER = "He et al. 2016, Table 1"
# name: (family, module class, fields, torchvision twin, reference)
_CONFIGS = {
    "resnet18": ("resnet", ResNet, dict(stage_sizes=STAGE_SIZES[18]), "resnet18", _PAPER),
    "resnet34": ("resnet", ResNet, dict(stage_sizes=STAGE_SIZES[34]), "resnet34", _PAPER),
    "resnet50": ("resnet", ResNet, dict(stage_sizes=STAGE_SIZES[50], **_B), "resnet50", _PAPER),
    "resnet101": ("resnet", ResNet, dict(stage_sizes=STAGE_SIZES[101], **_B), "resnet101", _PAPER),
    "resnet152": ("resnet", ResNet, dict(stage_sizes=STAGE_SIZES[152], **_B), "resnet152", _PAPER),
    "wide_resnet50_2": ("resnet", ResNet, dict(stage_sizes=STAGE_SIZES[50], width_per_group=128, **_B),
                        "wide_resnet50_2", "Zagoruyko & Komodakis 2016 (torchvision layout)"),
    "resnext50_32x4d": ("resnet", ResNet, dict(stage_sizes=STAGE_SIZES[50], groups=32, width_per_group=4, **_B),
                        "resnext50_32x4d", "Xie et al. 2017"),
    # The SENet reference model (Caffe; timm legacy_seresnet50) strides in the first 1x1: v1.
    "se_resnet50": ("se_resnet", ResNet, dict(stage_sizes=STAGE_SIZES[50], se_reduction=16, version="v1", **_B),
                    None, "Hu et al. 2018, SE-ResNet-50 (r=16)"),
    "preact_resnet18": ("preact_resnet", PreActResNet, dict(stage_sizes=STAGE_SIZES[18]), None,
                        "He et al. 2016b (identity mappings); fb.resnet.torch preresnet.lua"),
}


def _register(name: str) -> None:
    family, cls, fields, twin, reference = _CONFIGS[name]

    def factory(num_classes: int = 1000) -> nn.Module:
        return cls(num_classes=num_classes, **fields)

    factory.__name__ = name
    register_model(family=family, input_shape=(224, 224, 3), num_classes=1000, min_input_size=32,
                   torchvision=twin, reference=reference)(factory)


for _name in _CONFIGS:
    _register(_name)
