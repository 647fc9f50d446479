"""torchvision DenseNet-121, MobileNetV2, ShuffleNetV2 x1.0 and EfficientNet-B0 convert to the same logits."""

from __future__ import annotations

import numpy as np
import pytest

from tests.convert.parity import assert_parity

torchvision = pytest.importorskip("torchvision")
pytestmark = pytest.mark.torch


@pytest.mark.parametrize("name", ["densenet121", "mobilenet_v2", "shufflenet_v2_x1_0", "efficientnet_b0"])
def test_parity(name):
    """64x64: even sizes tell torchvision's symmetric (k-1)//2 padding of stride-2 (depthwise) convs and
    pools apart from "SAME", which would pad only bottom/right."""
    assert_parity(name, getattr(torchvision.models, name)(weights=None), (64, 64))


def test_channel_shuffle_matches_torchvision():
    import torch
    from torchvision.models.shufflenetv2 import channel_shuffle as torch_shuffle

    from cnnjax.models.families.shufflenet import channel_shuffle

    x = np.random.default_rng(0).standard_normal((2, 12, 3, 5)).astype(np.float32)
    want = torch_shuffle(torch.from_numpy(x), 2).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(np.asarray(channel_shuffle(x.transpose(0, 2, 3, 1), 2)), want)


def test_densenet169_converts():
    """Shapes only (densenet121's layout with other block lengths): every tensor lands on a model leaf."""
    from cnnjax.convert import from_torchvision

    variables = from_torchvision("densenet169", torchvision.models.densenet169(weights=None).state_dict())
    assert variables["params"]["classifier"]["kernel"].shape == (1664, 1000)
    assert "denselayer32" in variables["params"]["denseblock4"]
