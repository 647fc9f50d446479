"""torchvision EfficientNet-B0 -> cnnjax `EfficientNet` (block `stage{s}_{i}` is `features.{s}.{i}`)."""

from __future__ import annotations

from typing import Iterator

from cnnjax.convert.registry import register_converter
from cnnjax.convert.mobilenet import conv_bn, inverted_residual
from cnnjax.convert.torch_weights import Layer, TorchWeights, Variables, build_variables, linear
from cnnjax.models.families.efficientnet import B0_STAGES


def _rows(stages: tuple[tuple[int, ...], ...]) -> Iterator[Layer]:
    yield from conv_bn("stem", "features.0")
    for s, (expand, *_, layers) in enumerate(stages, start=1):
        for i in range(layers):
            yield from inverted_residual(f"stage{s}_{i}", f"features.{s}.{i}.block", expand != 1, se=True)
    yield from conv_bn("head", f"features.{len(stages) + 1}")
    yield linear("classifier", "classifier.1")


@register_converter("efficientnet_b0")
def convert(weights: TorchWeights, name: str) -> Variables:
    return build_variables(weights, _rows(B0_STAGES))
