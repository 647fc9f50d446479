"""torchvision googlenet / inception_v3 converted to cnnjax give the same logits (eval and, with the aux
heads, training)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tests.convert.parity import assert_parity, randomize, torch  # skips this module without torch

pytestmark = pytest.mark.torch
torchvision = pytest.importorskip("torchvision")


def tv_googlenet(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchvision.models.googlenet(init_weights=False, **kwargs)


def tv_inception_v3(**kwargs):
    return torchvision.models.inception_v3(init_weights=False, **kwargs)


@pytest.mark.parametrize("transform_input", [False, True])
def test_googlenet_parity(transform_input):
    model = tv_googlenet(aux_logits=False, transform_input=transform_input)
    assert_parity("googlenet", model, (64, 64), transform_input=transform_input)


def test_inception_v3_parity():
    assert_parity("inception_v3", tv_inception_v3(aux_logits=False), (75, 75))


def test_googlenet_aux_heads_parity_in_training():
    """Train mode (batch statistics) with dropout off: main and both aux logits agree, which checks the
    NCHW->NHWC permutation of the aux fc1 and the overlapping 7->4 adaptive pooling (112x112 input)."""
    import jax

    from cnnjax.convert import from_torchvision
    from cnnjax.models import create_model

    overrides = dict(aux_logits=True, dropout=0.0, aux_dropout=0.0)
    torch_model = randomize(tv_googlenet(aux_logits=True, dropout=0.0, dropout_aux=0.0)).train()
    images = np.random.default_rng(0).standard_normal((2, 112, 112, 3)).astype(np.float32)
    with torch.no_grad():
        want = torch_model(torch.from_numpy(images.transpose(0, 3, 1, 2)))
    variables = from_torchvision("googlenet", torch_model.state_dict(), **overrides)
    model = create_model("googlenet", **overrides)
    forward = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats", "aux_logits"]),
                      compiler_options={"xla_backend_optimization_level": 0})  # runs once: compile cheaply
    logits, state = forward(variables, images)
    aux = state["aux_logits"]
    pairs = [(logits, want.logits), (aux["aux1"][0], want.aux_logits1), (aux["aux2"][0], want.aux_logits2)]
    for got, ref in pairs:
        np.testing.assert_allclose(np.asarray(got), ref.numpy(), atol=1e-3, rtol=1e-4)


def test_inception_v3_aux_head_converts_and_must_match():
    from cnnjax.convert import ConversionError, from_torchvision

    state_dict = tv_inception_v3(aux_logits=True).state_dict()
    variables = from_torchvision("inception_v3", state_dict, aux_logits=True)
    assert variables["params"]["aux_head"]["conv1"]["conv"]["kernel"].shape == (5, 5, 128, 768)
    with pytest.raises(ConversionError, match="aux_head"):  # the state_dict has a head the model lacks
        from_torchvision("inception_v3", state_dict)
