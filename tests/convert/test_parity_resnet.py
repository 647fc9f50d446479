"""torchvision ResNets converted to cnnjax give the same eval-mode logits (64x64 inputs)."""

from __future__ import annotations

import pytest

from tests.convert.parity import assert_parity, torch

torchvision = pytest.importorskip("torchvision")

# After `randomize` the BN statistics no longer normalise, so the bottleneck nets' logits grow to ~2e2;
# float32 torch itself is then ~1e-3 away from float64 torch: assert_parity's bound is 1e-4 + 1e-5 * max|logit|.
NAMES = ("resnet18", "resnet50", "wide_resnet50_2", "resnext50_32x4d")


@pytest.mark.torch
@pytest.mark.parametrize("name", NAMES)
def test_parity_with_torchvision(name: str) -> None:
    torch.manual_seed(0)  # torchvision's own init of the conv/linear weights that `randomize` keeps
    assert_parity(name, getattr(torchvision.models, name)(), (64, 64))
