"""torchvision googlenet / inception_v3 -> cnnjax.

The rows are generated from the block tables that build the models (cnnjax/models/inception.py), whose
Flax names mirror torchvision's: each BasicConv2d `<block>.<conv>` fills `<block>/<conv>/{conv,bn}`.
GoogLeNet's branches are nn.Sequentials in torch, so its `branch2_1` is torch's `branch2.1`; the aux heads
(torch `aux1`, `aux2`, `AuxLogits`) are the Flax modules `aux1_head`, `aux2_head`, `aux_head`.
The one non-renaming is GoogLeNet's aux `fc1`, which reads a flattened 128x4x4 map: torch flattens it
channel-major (NCHW), cnnjax position-major (NHWC), so its kernel rows are permuted.
Aux heads are converted when the state_dict has them; convert with the matching `aux_logits=`.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Iterator

import numpy as np

from cnnjax.convert.registry import register_converter
from cnnjax.convert.torch_weights import Layer, TorchWeights, Variables, bn, build_variables, conv, linear
from cnnjax.models.families.inception import (GOOGLENET_BODY, GOOGLENET_STEM, INCEPTION_V3_AUX,
                                              INCEPTION_V3_BODY, INCEPTION_V3_STEM, Block, BodyItem, Branch,
                                              Conv, Fork)

GOOGLENET_AUX_MAP = (128, 4, 4)  # channels, height, width of the map GoogLeNet's aux fc1 reads


def convs(branches: Iterable[Branch]) -> Iterator[Conv]:
    for branch in branches:
        for step in branch:
            if isinstance(step, Conv):
                yield step
            elif isinstance(step, Fork):
                yield from step.convs


def basic_conv(flax_path: str, torch_prefix: str) -> list[Layer]:
    return [conv(f"{flax_path}/conv", f"{torch_prefix}.conv"), bn(f"{flax_path}/bn", f"{torch_prefix}.bn")]


def body_rows(stem: Branch, body: tuple[BodyItem, ...], torch_name: Callable[[str], str]) -> list[Layer]:
    """BasicConv rows of the stem and of every mixed block, in network order."""
    rows = [row for c in convs([stem]) for row in basic_conv(c.name, c.name)]
    for block in body:
        if isinstance(block, Block):
            rows += [row for c in convs(block.branches)
                     for row in basic_conv(f"{block.name}/{c.name}", f"{block.name}.{torch_name(c.name)}")]
    return rows


def has_aux(weights: TorchWeights, torch_head: str) -> bool:
    """Aux heads are converted when the state_dict has them (torchvision's `aux_logits=True`)."""
    return weights.has(f"{torch_head}.conv.conv.weight") or weights.has(f"{torch_head}.conv0.conv.weight")


def nchw_flatten_to_nhwc(kernel: np.ndarray, chw: tuple[int, int, int]) -> np.ndarray:
    """Permutes the input rows of a Dense kernel (in, out) from NCHW-flatten order to NHWC-flatten order."""
    c, h, w = chw
    return kernel.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(c * h * w, -1)


@register_converter("googlenet")
def convert_googlenet(weights: TorchWeights, name: str) -> Variables:
    rows = body_rows(GOOGLENET_STEM, GOOGLENET_BODY, lambda conv_name: re.sub(r"_(\d+)$", r".\1", conv_name))
    heads = [tap for tap in GOOGLENET_BODY if isinstance(tap, str) and has_aux(weights, tap)]
    fc1 = {tap: weights.linear(f"{tap}.fc1") for tap in heads}  # taken first: build_variables wants all used
    for tap in heads:
        rows += [*basic_conv(f"{tap}_head/conv", f"{tap}.conv"), linear(f"{tap}_head/fc2", f"{tap}.fc2")]
    variables = build_variables(weights, [*rows, linear("fc", "fc")])
    for tap, leaves in fc1.items():
        kernel = nchw_flatten_to_nhwc(leaves["kernel"], GOOGLENET_AUX_MAP)
        variables["params"][f"{tap}_head"]["fc1"] = {**leaves, "kernel": kernel}
    return variables


@register_converter("inception_v3")
def convert_inception_v3(weights: TorchWeights, name: str) -> Variables:
    rows = body_rows(INCEPTION_V3_STEM, INCEPTION_V3_BODY, lambda conv_name: conv_name)
    if has_aux(weights, "AuxLogits"):
        rows += [row for c in convs([INCEPTION_V3_AUX])
                 for row in basic_conv(f"aux_head/{c.name}", f"AuxLogits.{c.name}")]
        rows.append(linear("aux_head/fc", "AuxLogits.fc"))
    return build_variables(weights, [*rows, linear("fc", "fc")])
