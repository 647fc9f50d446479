"""ImageNet ResNets (He et al. 2016) and relatives: ResNeXt, Wide ResNet-50-2, SE-ResNet-50, pre-activation.

One post-activation block (`blocks.ResidualBlock`, shared with the CIFAR ResNets) covers the basic (two
3x3) and bottleneck (1x1-3x3-1x1) layouts, so the variants are rows of a config table: ResNeXt sets
`groups`/`width_per_group`, Wide ResNet-50-2 doubles `width_per_group`, SE-ResNet adds a squeeze-excitation
gate on the residual before the addition; the pre-activation ResNet uses `blocks.PreActBlock`.

Conventions follow torchvision (parameter counts match exactly): no conv biases, BatchNorm after every
convolution, "option B" shortcuts (1x1 conv + BN only where the shape changes), kaiming-normal fan-out
init. `version="v1.5"` (torchvision, default) puts a bottleneck's stride in its 3x3 conv; `version="v1"`
(the paper, Caffe, Keras) in its first 1x1 conv: same parameters, ~6% fewer MACs for ResNet-50 (the
3x3 then runs at the reduced resolution), slightly lower accuracy. The 7x7/2 stem, the 3x3/2 max-pool and
three stride-2 stages downsample 32x, so 32x32 is the smallest input (1x1 final feature map).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax

from cnnjax.models.blocks import PreActBlock, ResidualBlock, linear_drop_rate, stage_stride
from cnnjax.models.layers import Classifier, Ops, global_avg_pool
from cnnjax.models.window_pool import max_pool
from cnnjax.models.registry import register_model

VERSIONS = ("v1", "v1.5")
STAGE_SIZES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
STAGE_PLANES = (64, 128, 256, 512)


def imagenet_stem(ops: Ops, x: jax.Array) -> jax.Array:
    """conv 7x7/2 (64) - BN - act - max-pool 3x3/2 (pad 1): 4x downsampling."""
    x = ops.conv(64, (7, 7), strides=2, padding=3, name="conv1")(x)
    x = ops.act()(ops.norm(name="bn1")(x))
    return max_pool(x, 3, 2, padding=((1, 1), (1, 1)))


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

    def applied_options(self) -> frozenset[str]:
        return frozenset({"norm", "spatial_dropout", "drop_path"})

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if self.version not in VERSIONS:
            raise ValueError(f"version must be one of {VERSIONS}, got {self.version!r}")
        ops = self.ops(train)
        x = imagenet_stem(ops, x)
        total, index = sum(self.stage_sizes), 0
        for stage, blocks in enumerate(self.stage_sizes):
            for i in range(blocks):
                x = ResidualBlock(
                    ops, STAGE_PLANES[stage], stage_stride(stage, i), self.bottleneck, self.groups,
                    self.width_per_group, self.version == "v1", self.se_reduction, self.zero_init_residual,
                    drop_path=linear_drop_rate(self.drop_path, index, total), name=f"layer{stage + 1}_{i}")(x)
                index += 1
        return ops.dense(self.num_classes, name="fc")(global_avg_pool(x))


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

    def applied_options(self) -> frozenset[str]:
        return frozenset({"norm", "spatial_dropout", "drop_path"})

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        ops = self.ops(train)
        x = imagenet_stem(ops, x)
        total, index = sum(self.stage_sizes), 0
        for stage, blocks in enumerate(self.stage_sizes):
            for i in range(blocks):
                x = PreActBlock(ops, STAGE_PLANES[stage], stage_stride(stage, i), preact_input=stage > 0 or i > 0,
                                drop_path=linear_drop_rate(self.drop_path, index, total),
                                name=f"layer{stage + 1}_{i}")(x)
                index += 1
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


for _name, (_family, _cls, _fields, _twin, _reference) in _CONFIGS.items():
    register_model(_name, functools.partial(_cls, **_fields), family=_family, input_shape=(224, 224, 3),
                   min_input_size=32, torchvision=_twin, reference=_reference)
