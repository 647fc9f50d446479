"""torchvision ResNet / Wide ResNet-50-2 / ResNeXt-50 -> cnnjax.models.resnet.ResNet.

The Flax tree mirrors torchvision's names ("layer2.0.conv1" -> "layer2_0/conv1", "downsample.0/.1" ->
"downsample_conv/_bn"), so the rows are generated from the model's stage sizes and block kind.
torchvision's ResNets are v1.5; its weights load into `version="v1"` too (same shapes), but that is a
different network.
"""

from __future__ import annotations

from cnnjax.convert.registry import register_converter
from cnnjax.convert.torch_weights import Layer, TorchWeights, Variables, bn, build_variables, conv, linear
from cnnjax.models import create_model


def resnet_rows(weights: TorchWeights, stage_sizes: tuple[int, ...], bottleneck: bool) -> list[Layer]:
    """Converter rows of a torchvision ResNet with the given blocks per stage."""
    rows = [conv("conv1", "conv1"), bn("bn1", "bn1")]
    convs_per_block = 3 if bottleneck else 2
    for stage, blocks in enumerate(stage_sizes, 1):
        for i in range(blocks):
            flax, torch = f"layer{stage}_{i}", f"layer{stage}.{i}"
            for j in range(1, convs_per_block + 1):
                rows += [conv(f"{flax}/conv{j}", f"{torch}.conv{j}"), bn(f"{flax}/bn{j}", f"{torch}.bn{j}")]
            if weights.has(f"{torch}.downsample.0.weight"):
                rows += [conv(f"{flax}/downsample_conv", f"{torch}.downsample.0"),
                         bn(f"{flax}/downsample_bn", f"{torch}.downsample.1")]
    rows.append(linear("fc", "fc"))
    return rows


@register_converter("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2",
                    "resnext50_32x4d")
def convert(weights: TorchWeights, name: str) -> Variables:
    model = create_model(name)
    return build_variables(weights, resnet_rows(weights, model.stage_sizes, model.bottleneck))
