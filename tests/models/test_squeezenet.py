"""SqueezeNet 1.0 and 1.1 (torchvision layout): Fire modules, conv classifier, ceil-mode pooling."""

from __future__ import annotations

import flax.linen as nn
import pytest

from cnnjax.models import model_info
from cnnjax.models.activations import Activation
from tests.models.zoo_checks import (called_modules, check_forward, check_train_step, dropout_rates, feature_shapes,
                                     param_count)

COUNTS = {"squeezenet1_0": 1_248_424, "squeezenet1_1": 1_235_496}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_param_count(name):
    assert param_count(name) == COUNTS[name]
    assert model_info(name).torchvision == name


@pytest.mark.parametrize("name, maps", [
    # 224 -> conv1 109 (1.0, 7x7/2) or 111 (1.1, 3x3/2) -> ceil-mode 3x3/2 pools: 54 -> 27 -> 13
    ("squeezenet1_0", {"conv1": 109, "fire2": 54, "fire4": 54, "fire5": 27, "fire8": 27, "fire9": 13}),
    ("squeezenet1_1", {"conv1": 111, "fire2": 55, "fire3": 55, "fire4": 27, "fire6": 13, "fire9": 13}),
])
def test_feature_maps_at_224(name, maps):
    shapes = feature_shapes(name, 224)
    assert {k: shapes[k][1] for k in maps} == maps
    assert shapes["fire9"][-1] == 512 and shapes["conv10"] == (1, 13, 13, 1000)


def test_fire_concatenates_expansions():
    """Fire output channels = 1x1 expansion + 3x3 expansion; squeeze has 1/8 of them."""
    shapes = feature_shapes("squeezenet1_1", 64)
    assert [shapes[f"fire{i}"][-1] for i in range(2, 10)] == [128, 128, 256, 256, 384, 384, 512, 512]


@pytest.mark.parametrize("name, size", [("squeezenet1_0", 21), ("squeezenet1_1", 17)])
def test_smallest_input_and_error(name, size):
    assert model_info(name).min_input_size == size
    assert feature_shapes(name, size)["conv10"][1:3] == (1, 1)
    with pytest.raises(ValueError, match=f"{name} needs inputs of at least {size}x{size}"):
        feature_shapes(name, size - 1)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_forward_at_smallest_input(name):
    check_forward(name, model_info(name).min_input_size)


def test_train_step():
    """Both versions are built from the same Fire module; one gradient step covers it."""
    check_train_step("squeezenet1_1", model_info("squeezenet1_1").min_input_size, num_classes=10)


def test_overrides():
    options = {"num_classes": 10, "dropout": 0.1, "act": "elu"}
    ran = called_modules("squeezenet1_0", 64, **options)
    assert {m.kind for m in ran if isinstance(m, Activation)} == {"elu"}  # every activation that runs
    assert dropout_rates("squeezenet1_0", 64, **options) == [0.1]
    assert [m.features for m in ran if isinstance(m, nn.Conv)][-1] == 10  # conv10 is the classifier
    assert param_count("squeezenet1_0", num_classes=10) == COUNTS["squeezenet1_0"] - 990 * 513
    with pytest.raises(ValueError, match="SqueezeNet version must be one of"):
        feature_shapes("squeezenet1_0", 64, version="1_2")
