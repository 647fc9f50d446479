"""DenseNet-121/169/201 (torchvision layout) and the CIFAR DenseNet-BC (L=100, k=12)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from cnnjax.models import create_model, model_info
from tests.models.zoo_checks import (check_forward, check_train_step, feature_shapes, images, init_shapes,
                                     param_count, train_step)


@pytest.mark.parametrize("name, count", [
    ("densenet121", 7_978_856), ("densenet169", 14_149_480), ("densenet201", 20_013_928),
    ("densenet_bc100_k12", 769_162)])
def test_param_count(name, count):
    assert param_count(name) == count


def test_densenet121_feature_shapes():
    """Each block adds layers*32 channels, each transition halves channels and resolution (224 -> 7)."""
    shapes = feature_shapes("densenet121", 224)
    assert shapes["conv0"] == (1, 112, 112, 64)
    for i, channels in enumerate((256, 512, 1024, 1024), start=1):
        side = 56 // 2 ** (i - 1)
        assert shapes[f"denseblock{i}"] == (1, side, side, channels)
        if i < 4:
            assert shapes[f"transition{i}"] == (1, side // 2, side // 2, channels // 2)
    assert shapes["classifier"] == (1, 1000)


def test_cifar_bc_shapes():
    """24-channel stem, 16 layers of growth 12 per block, compression 0.5: 216->108, 300->150, 342."""
    shapes = feature_shapes("densenet_bc100_k12", 32)
    assert shapes["conv0"] == (1, 32, 32, 24)
    assert shapes["denseblock1"] == (1, 32, 32, 216)
    assert shapes["transition1"] == (1, 16, 16, 108)
    assert shapes["transition2"] == (1, 8, 8, 150)
    assert shapes["denseblock3"] == (1, 8, 8, 342)
    assert shapes["classifier"] == (1, 10)
    smallest = model_info("densenet_bc100_k12").min_input_size
    assert feature_shapes("densenet_bc100_k12", smallest)["norm5"] == (1, 1, 1, 342)


def test_options_change_the_network():
    assert param_count("densenet_bc100_k12", compression=1.0) > 769_162
    assert param_count("densenet_bc100_k12", act="prelu") > 769_162  # one slope per channel per activation
    with pytest.raises(ValueError, match="stem"):
        feature_shapes("densenet_bc100_k12", 32, stem="other")


def test_cifar_bc_forward():
    check_forward("densenet_bc100_k12", 32)


def test_cifar_bc_train_step():
    """The full-depth step is traced (compiling it costs ~50 s of CPU); a 3x2-layer DenseNet-BC runs one,
    with dropout after each layer drawing from the 'dropout' rng."""
    model = create_model("densenet_bc100_k12")
    x, labels = images(32), jnp.arange(2)
    variables = init_shapes(model, x)
    state, metrics = jax.eval_shape(train_step(model, x, labels), variables, jax.random.PRNGKey(0))
    assert metrics["loss"].shape == ()
    assert jax.tree.structure(state.params) == jax.tree.structure(variables["params"])
    assert jax.tree.structure(state.batch_stats) == jax.tree.structure(variables["batch_stats"])
    check_train_step("densenet_bc100_k12", 32, block_config=(2, 2, 2), drop_rate=0.2)
