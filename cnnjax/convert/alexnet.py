"""torchvision `alexnet` -> cnnjax `alexnet_owt` (the one-tower net torchvision ships as AlexNet).

torch flattens the 256x6x6 NCHW features channel-major while cnnjax flattens NHWC, so fc6's input rows
are permuted here (`nchw_linear`, shared with VGG) rather than transposing activations in the model.
"""

from __future__ import annotations

import numpy as np

from cnnjax.convert.registry import register_converter
from cnnjax.convert.torch_weights import (Layer, TorchWeights, Variables, build_variables, conv,
                                          linear)
from cnnjax.models.families.alexnet import ARCHS

TORCH_CONVS = (0, 3, 6, 8, 10)  # indices of the convolutions in torchvision's `features`


def nchw_linear(weights: TorchWeights, prefix: str, hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """torch Linear on flattened (C, H, W) features -> Flax Dense on flattened (H, W, C) features."""
    w = weights.take(f"{prefix}.weight")
    out_features, in_features = w.shape
    h, wd = hw
    channels = in_features // (h * wd)
    kernel = w.reshape(out_features, channels, h, wd).transpose(2, 3, 1, 0).reshape(in_features, out_features)
    return {"kernel": kernel, "bias": weights.take(f"{prefix}.bias")}


def convert_with_nchw_fc6(weights: TorchWeights, rows: list[Layer], fc6_prefix: str,
                          hw: tuple[int, int]) -> Variables:
    """`build_variables` for rows of every layer but fc6, whose rows are permuted by `nchw_linear`.

    fc6 is consumed first so that `build_variables`' left-over check still covers the whole state_dict.
    """
    fc6 = nchw_linear(weights, fc6_prefix, hw)
    variables = build_variables(weights, rows)
    variables["params"]["fc6"] = fc6
    return variables


@register_converter("alexnet_owt")
def convert(weights: TorchWeights, name: str) -> Variables:
    rows = [conv(f"conv{i}", f"features.{j}") for i, j in enumerate(TORCH_CONVS, start=1)]
    rows += [linear("fc7", "classifier.4"), linear("fc8", "classifier.6")]
    pooled = ARCHS[name].pooled
    return convert_with_nchw_fc6(weights, rows, "classifier.1", (pooled, pooled))
