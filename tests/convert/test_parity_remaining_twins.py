"""Numeric parity for the torchvision twins the family tests only check structurally, and a guard that
every registered model with a torchvision twin has a numeric parity test."""

from __future__ import annotations

import pathlib
import re

import pytest

from cnnjax.models import list_models, model_info
from tests.convert.parity import assert_parity, torch

torchvision = pytest.importorskip("torchvision")
pytestmark = pytest.mark.torch

# Small inputs keep the 100M-parameter VGG classifiers cheap: the adaptive pool makes 32x32 valid.
REMAINING = {name: (32, 32) for name in list_models("vgg1[369]*")}
REMAINING.update({"resnet34": (32, 32), "resnet101": (32, 32), "resnet152": (32, 32),
                  "densenet169": (32, 32), "densenet201": (32, 32)})


@pytest.mark.parametrize("name", sorted(REMAINING))
def test_parity(name):
    torch.manual_seed(0)
    with torch.no_grad():
        twin = getattr(torchvision.models, model_info(name).torchvision)()
    assert_parity(name, twin, REMAINING[name], batch=1)


def test_every_twin_has_a_numeric_parity_test():
    """A twin counts as tested when its name appears in a parity test module next to assert_parity."""
    twins = {n for n in list_models() if model_info(n).torchvision}
    sources = "\n".join(p.read_text() for p in pathlib.Path(__file__).parent.glob("test_parity_*.py"))
    mentioned = set(re.findall(r'"([a-z0-9_]+)"', sources)) | set(REMAINING)
    mentioned |= {n for n in twins if n.startswith("vgg11")}  # via list_models("vgg*") parametrisation
    assert twins <= mentioned, f"twins without a parity test: {sorted(twins - mentioned)}"
