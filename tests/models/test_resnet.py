"""ImageNet ResNets and relatives: exact parameter counts, shapes at the smallest input, a train step,
v1/v1.5 stride placement, zero_init_residual, and the squeeze-excitation block."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.models import create_model, model_info
from cnnjax.models.layers import Classifier
from cnnjax.models.squeeze_excite import SqueezeExcite
from tests.models.zoo_checks import (check_forward, check_train_step, host_variables, images, init_shapes,
                                     param_count)

# torchvision's num_params; se_resnet50 = timm legacy_seresnet50; preact_resnet18: see PreActResNet.
COUNTS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "wide_resnet50_2": 68_883_240,
    "resnext50_32x4d": 25_028_904,
    "se_resnet50": 28_088_024,
    "preact_resnet18": 11_687_720,
}
TINY = dict(stage_sizes=(1, 1, 1, 1))  # one block per stage: every code path, a fraction of the compile time


@pytest.mark.parametrize("name", list(COUNTS))
def test_param_count_and_metadata(name: str) -> None:
    info = model_info(name)
    assert info.input_shape == (224, 224, 3) and info.min_input_size == 32
    assert param_count(create_model(name), info.min_input_size) == COUNTS[name]


def test_num_classes_only_changes_the_classifier() -> None:
    assert param_count(create_model("resnet50", num_classes=10), 32) == COUNTS["resnet50"] - 990 * 2049


# resnet18's forward is covered by its train step and its torchvision parity test.
@pytest.mark.parametrize("name", ["resnext50_32x4d", "se_resnet50", "preact_resnet18"])
def test_forward_at_min_input(name: str) -> None:
    check_forward(create_model(name), model_info(name).min_input_size)


@pytest.mark.parametrize("name", ["resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2"])
def test_output_shape_of_large_models(name: str) -> None:
    model = create_model(name)
    out = jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x)[0], images(32))
    assert out.shape == (2, 1000)


@pytest.mark.parametrize("name, overrides", [
    ("resnet18", {}),
    ("preact_resnet18", TINY),
    ("se_resnet50", dict(TINY, groups=32, width_per_group=4)),  # SE + grouped bottleneck
])
def test_train_step(name: str, overrides: dict) -> None:
    check_train_step(create_model(name, num_classes=10, **overrides), 32)


def _first_conv_shapes(version: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Output shapes of conv1 and conv2 in the first (strided) block of stage 2."""
    model = create_model("resnet50", num_classes=10, version=version, **TINY)
    x = images(64, 1)
    _, state = jax.eval_shape(lambda: model.init_with_output(
        jax.random.key(0), x, capture_intermediates=lambda m, _: m.name in ("conv1", "conv2")))
    block = state["intermediates"]["layer2_0"]
    return block["conv1"]["__call__"][0].shape, block["conv2"]["__call__"][0].shape


def test_version_moves_the_stride() -> None:
    # 64x64 input -> 16x16 after the stem; stage 2 halves to 8x8.
    assert _first_conv_shapes("v1.5") == ((1, 16, 16, 128), (1, 8, 8, 128))  # stride in the 3x3
    assert _first_conv_shapes("v1") == ((1, 8, 8, 128), (1, 8, 8, 128))  # stride in the first 1x1


def test_version_same_params_fewer_macs_different_outputs() -> None:
    v15, v1 = create_model("resnet50"), create_model("resnet50", version="v1")
    assert param_count(v1, 32) == param_count(v15, 32) == COUNTS["resnet50"]
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    variables = init_shapes(v15, x)
    flops = {m.version: jax.jit(m.apply).lower(variables, x).cost_analysis()["flops"] for m in (v1, v15)}
    assert flops["v1"] < 0.97 * flops["v1.5"]  # ResNet-50 at 224: 3.86 vs 4.09 GMACs

    tiny15, tiny1 = (create_model("resnet50", num_classes=10, version=v, **TINY) for v in ("v1.5", "v1"))
    x = images(32)
    variables = host_variables(tiny15, x)
    assert not np.allclose(jax.jit(tiny15.apply)(variables, x), jax.jit(tiny1.apply)(variables, x))


def test_unknown_version_is_rejected() -> None:
    with pytest.raises(ValueError, match="version"):
        param_count(create_model("resnet18", version="v2"), 32)


def _initial_params(name: str, **overrides) -> dict:
    """Real `init` values; weight_init="zeros" draws no random numbers, which keeps the compile cheap."""
    model = create_model(name, weight_init="zeros", **TINY, **overrides)
    return jax.jit(lambda: model.init(jax.random.key(0), images(32, 1)))()["params"]


@pytest.mark.parametrize("name, last_bn", [("resnet18", "bn2"), ("resnet50", "bn3")])
def test_zero_init_residual(name: str, last_bn: str) -> None:
    blocks = [v for k, v in _initial_params(name, zero_init_residual=True).items() if k.startswith("layer")]
    assert len(blocks) == 4
    for block in blocks:
        assert not np.any(block[last_bn]["scale"])  # the residual branch starts at zero
        assert np.all(block["bn1"]["scale"] == 1)
        if "downsample_bn" in block:
            assert np.all(block["downsample_bn"]["scale"] == 1)
    assert np.all(_initial_params(name)["layer1_0"][last_bn]["scale"] == 1)


def test_act_override_reaches_every_block() -> None:
    params = init_shapes(create_model("resnet18", act="prelu", **TINY), images(32, 1))["params"]
    prelus = [path for path, _ in jax.tree_util.tree_flatten_with_path(params)[0] if "alpha" in str(path[-1])]
    assert len(prelus) == 1 + 4 * 2  # stem + two per basic block


def test_squeeze_excite_gates_channels() -> None:
    ops = Classifier().ops(train=False)

    class Probe(nn.Module):
        squeeze_channels: int | None = None

        @nn.compact
        def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
            return SqueezeExcite(ops, reduction=16, squeeze_channels=self.squeeze_channels, name="se")(x)

    x = jax.random.normal(jax.random.key(2), (2, 5, 5, 64))
    variables = host_variables(Probe(), x)
    shapes = jax.tree.map(jnp.shape, variables["params"]["se"])
    assert shapes == {"fc1": {"kernel": (1, 1, 64, 4), "bias": (4,)},
                      "fc2": {"kernel": (1, 1, 4, 64), "bias": (64,)}}
    y = jax.jit(Probe().apply)(variables, x)
    gate = y / x  # one gate per (image, channel), strictly between 0 and 1 (ReLU + sigmoid)
    np.testing.assert_allclose(gate, jnp.broadcast_to(gate[:, :1, :1], gate.shape), rtol=1e-5)
    assert float(gate.min()) > 0 and float(gate.max()) < 1
    wide = init_shapes(Probe(squeeze_channels=16), x)["params"]["se"]["fc1"]["kernel"]
    assert wide.shape == (1, 1, 64, 16)
