"""torchvision MobileNetV2 -> cnnjax `MobileNetV2`; `conv_bn` also serves the other mobile converters."""

from __future__ import annotations

from typing import Iterator

from cnnjax.convert.registry import register_converter
from cnnjax.convert.torch_weights import Layer, TorchWeights, Variables, bn, build_variables, conv, linear
from cnnjax.models.families.mobilenet import V2_SETTING


def conv_bn(flax: str, torch_conv: str, torch_bn: str | None = None) -> tuple[Layer, Layer]:
    """Rows of a cnnjax `ConvBN`; by default from a torchvision Conv2dNormActivation (`prefix.0`, `prefix.1`)."""
    if torch_bn is None:
        torch_conv, torch_bn = f"{torch_conv}.0", f"{torch_conv}.1"
    return conv(f"{flax}/conv", torch_conv), bn(f"{flax}/bn", torch_bn)


def inverted_residual(flax: str, torch: str, expand: bool, se: bool = False) -> Iterator[Layer]:
    """A cnnjax `InvertedResidual` from torchvision's Sequential of [expand,] depthwise, [SE,] projection,
    where MobileNetV2's projection is a bare conv + BN and EfficientNet's a Conv2dNormActivation."""
    index = 0
    if expand:
        yield from conv_bn(f"{flax}/expand", f"{torch}.{index}")
        index += 1
    yield from conv_bn(f"{flax}/dw", f"{torch}.{index}")
    index += 1
    if se:
        yield conv(f"{flax}/se/fc1", f"{torch}.{index}.fc1")
        yield conv(f"{flax}/se/fc2", f"{torch}.{index}.fc2")
        yield from conv_bn(f"{flax}/project", f"{torch}.{index + 1}")
    else:
        yield from conv_bn(f"{flax}/project", f"{torch}.{index}", f"{torch}.{index + 1}")


def _mobilenet_v2_rows() -> Iterator[Layer]:
    yield from conv_bn("stem", "features.0")
    index = 1
    for expand, _, repeats, _ in V2_SETTING:
        for _ in range(repeats):
            yield from inverted_residual(f"block{index}", f"features.{index}.conv", expand != 1)
            index += 1
    yield from conv_bn("head", f"features.{index}")
    yield linear("classifier", "classifier.1")


@register_converter("mobilenet_v2")
def convert(weights: TorchWeights, name: str) -> Variables:
    return build_variables(weights, _mobilenet_v2_rows())
