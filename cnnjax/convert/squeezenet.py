"""torchvision squeezenet1_0/1_1 -> cnnjax SqueezeNet (Fire modules keep torchvision's sub-names)."""

from __future__ import annotations

from cnnjax.convert.registry import register_converter
from cnnjax.convert.torch_weights import Layer, TorchWeights, Variables, build_variables, conv
from cnnjax.models.families.squeezenet import VERSIONS

FIRE_CONVS = ("squeeze", "expand1x1", "expand3x3")


def rows(version: str) -> list[Layer]:
    """`features` holds conv1, its ReLU, then one entry per body item (pool or Fire), in order."""
    out, fire = [conv("conv1", "features.0")], 2
    for index, item in enumerate(VERSIONS[version][2], start=2):
        if item != "pool":
            out += [conv(f"fire{fire}/{c}", f"features.{index}.{c}") for c in FIRE_CONVS]
            fire += 1
    return out + [conv("conv10", "classifier.1")]


@register_converter("squeezenet1_0", "squeezenet1_1")
def convert(weights: TorchWeights, name: str) -> Variables:
    return build_variables(weights, rows(name.removeprefix("squeezenet")))
