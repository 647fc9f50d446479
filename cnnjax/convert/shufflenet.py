"""torchvision ShuffleNetV2 x1.0 -> cnnjax `ShuffleNetV2`."""

from __future__ import annotations

from typing import Iterator

from cnnjax.convert.registry import register_converter
from cnnjax.convert.mobilenet import conv_bn
from cnnjax.convert.torch_weights import Layer, TorchWeights, Variables, build_variables, linear
from cnnjax.models.families.shufflenet import STAGES_REPEATS

# cnnjax ConvBN name -> indices of its conv and BN in torchvision's branch Sequentials.
_BRANCH1 = {"branch1_dw": (0, 1), "branch1_pw": (2, 3)}
_BRANCH2 = {"branch2_pw1": (0, 1), "branch2_dw": (3, 4), "branch2_pw2": (5, 6)}


def _rows(stages_repeats: tuple[int, ...]) -> Iterator[Layer]:
    yield from conv_bn("conv1", "conv1")
    for stage, repeats in enumerate(stages_repeats, start=2):
        for i in range(repeats):
            parts = {**_BRANCH1, **_BRANCH2} if i == 0 else _BRANCH2
            for flax, (c, b) in parts.items():
                branch = f"stage{stage}.{i}.{flax.split('_')[0]}"
                yield from conv_bn(f"stage{stage}_{i}/{flax}", f"{branch}.{c}", f"{branch}.{b}")
    yield from conv_bn("conv5", "conv5")
    yield linear("fc", "fc")


@register_converter("shufflenet_v2_x1_0")
def convert(weights: TorchWeights, name: str) -> Variables:
    return build_variables(weights, _rows(STAGES_REPEATS))
