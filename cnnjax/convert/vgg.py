"""torchvision vgg{11,13,16,19}[_bn] -> cnnjax VGG: walks torchvision's `features` Sequential indices."""

from __future__ import annotations

from cnnjax.convert.registry import register_converter
from cnnjax.convert.alexnet import convert_with_nchw_fc6
from cnnjax.convert.torch_weights import Layer, TorchWeights, Variables, bn, conv, linear
from cnnjax.models.families.vgg import STAGES, conv_layers


def feature_rows(depth: int, batch_norm: bool) -> list[Layer]:
    """Each conv occupies conv[, bn], relu in `features`; each stage ends with a max-pool entry."""
    rows, index = [], 0
    for name, _, closes_stage in conv_layers(depth):
        rows.append(conv(name, f"features.{index}"))
        if batch_norm:
            rows.append(bn(name.replace("conv", "bn"), f"features.{index + 1}"))
        index += 3 if batch_norm else 2
        index += 1 if closes_stage else 0
    return rows


@register_converter(*(f"vgg{d}{s}" for d in STAGES for s in ("", "_bn")))
def convert(weights: TorchWeights, name: str) -> Variables:
    depth, batch_norm = int(name[3:5]), name.endswith("_bn")
    rows = feature_rows(depth, batch_norm) + [linear("fc7", "classifier.3"), linear("fc8", "classifier.6")]
    return convert_with_nchw_fc6(weights, rows, "classifier.0", (7, 7))
