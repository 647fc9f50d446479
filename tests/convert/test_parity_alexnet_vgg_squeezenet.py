"""torchvision parity for alexnet_owt, vgg11(_bn) and squeezenet1_0/1_1, plus the layers they rely on.

Inputs are non-square and leave final maps larger than 1x1 (alexnet 3x4, VGG 2x3 before the adaptive
pool), so a wrong fc6 row permutation or a swapped H/W would show; SqueezeNet's sizes make its ceil-mode
pools overhang. The bigger VGGs are checked structurally (counts, converter mapping) on torch's meta
device, which allocates nothing.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from tests.convert.parity import assert_parity, torch  # skips this module without torch

from cnnjax.convert import ConversionError, expected_shapes, from_torchvision
from cnnjax.convert.torch_weights import TorchWeights
from cnnjax.convert.vgg import convert as convert_vgg
from cnnjax.models import list_models, model_info
from cnnjax.models.lrn import local_response_norm
from cnnjax.models.pooling import adaptive_avg_pool
from tests.models.zoo_checks import param_count

tvm = pytest.importorskip("torchvision.models")
pytestmark = pytest.mark.torch

TWINS = ["alexnet_owt", "squeezenet1_0", "squeezenet1_1", *list_models("vgg*")]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The machine's two cores are shared; torch's own thread pool would only add contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _twin(name: str, device: str = "cpu") -> "torch.nn.Module":
    with torch.device(device):
        return getattr(tvm, model_info(name).torchvision)()


@pytest.mark.parametrize("name, hw", [
    ("alexnet_owt", (127, 159)), ("vgg11", (64, 96)), ("vgg11_bn", (64, 96)),
    ("squeezenet1_0", (64, 80)), ("squeezenet1_1", (64, 80)),
])
def test_parity(name, hw):
    assert_parity(name, _twin(name), hw)


@pytest.mark.parametrize("name", TWINS)
def test_count_matches_torchvision(name):
    twin = _twin(name, "meta")
    assert param_count(name) == sum(p.numel() for p in twin.parameters())


@pytest.mark.parametrize("name", list_models("vgg*"))
def test_vgg_converter_covers_every_tensor(name):
    """The converter consumes the whole state_dict and fills exactly the model's variables.

    Zero-stride numpy views stand in for the tensors, so vgg19's 143M parameters cost no memory.
    """
    state = {k: np.broadcast_to(np.float32(0), tuple(v.shape))
             for k, v in _twin(name, "meta").state_dict().items() if v.is_floating_point()}
    got = convert_vgg(TorchWeights(state), name)
    want = {k: v for k, v in expected_shapes(name).items() if k in ("params", "batch_stats")}
    shape_tree = lambda tree: jax.tree.map(lambda a: tuple(a.shape), tree)  # noqa: E731
    assert shape_tree(got) == shape_tree(want)


def test_alexnet_owt_is_torchvision_alexnet():
    assert model_info("alexnet_owt").torchvision == "alexnet"
    assert model_info("alexnet").torchvision is None and model_info("zfnet").torchvision is None


@pytest.mark.parametrize("hw, out", [
    ((13, 13), 6), ((5, 9), 7), ((1, 2), 7), ((10, 14), (4, 6)), ((6, 6), 3)])
def test_adaptive_avg_pool_matches_torch(hw, out):
    x = np.random.default_rng(0).standard_normal((2, *hw, 5)).astype(np.float32)
    want = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), out)
    got = jax.jit(adaptive_avg_pool, static_argnums=1)(x, out)
    np.testing.assert_allclose(np.asarray(got), want.permute(0, 2, 3, 1).numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("size, channels", [(5, 96), (4, 10), (5, 3)])
def test_lrn_matches_torch(size, channels):
    """AlexNet's alpha/beta/k with torch's alpha/n convention, including windows cut by the channel ends."""
    x = np.random.default_rng(0).standard_normal((2, 6, 7, channels)).astype(np.float32) * 40
    lrn = torch.nn.LocalResponseNorm(size, alpha=1e-4, beta=0.75, k=2.0)
    want = lrn(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    got = jax.jit(local_response_norm, static_argnums=1)(x, size)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)


def test_converter_rejects_wrong_twin():
    """A squeezenet1_1 state_dict does not fit squeezenet1_0 (different conv1 and pool positions)."""
    with pytest.raises(ConversionError):
        from_torchvision("squeezenet1_0", _twin("squeezenet1_1").state_dict())
