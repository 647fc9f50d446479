"""torchvision DenseNet-121/169/201 -> cnnjax `DenseNet` (module names mirror torchvision's)."""

from __future__ import annotations

from typing import Iterator

from cnnjax.convert.registry import register_converter
from cnnjax.convert.torch_weights import Layer, TorchWeights, Variables, bn, build_variables, conv, linear
from cnnjax.models.families.densenet import IMAGENET_CONFIGS


def _rows(block_config: tuple[int, ...]) -> Iterator[Layer]:
    yield conv("conv0", "features.conv0")
    yield bn("norm0", "features.norm0")
    for b, num_layers in enumerate(block_config, start=1):
        for i in range(1, num_layers + 1):
            flax, torch = f"denseblock{b}/denselayer{i}", f"features.denseblock{b}.denselayer{i}"
            for part in ("1", "2"):
                yield bn(f"{flax}/norm{part}", f"{torch}.norm{part}")
                yield conv(f"{flax}/conv{part}", f"{torch}.conv{part}")
        if b < len(block_config):
            yield bn(f"transition{b}/norm", f"features.transition{b}.norm")
            yield conv(f"transition{b}/conv", f"features.transition{b}.conv")
    yield bn("norm5", "features.norm5")
    yield linear("classifier", "classifier")


@register_converter(*IMAGENET_CONFIGS)
def convert(weights: TorchWeights, name: str) -> Variables:
    return build_variables(weights, _rows(IMAGENET_CONFIGS[name]))
