"""GoogLeNet and Inception-v3: counts, input limits, auxiliary heads, forward and train step."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.models import create_model, model_info
from cnnjax.models.families.inception import to_google_scaling
from cnnjax.models.registry import IMAGENET_MEAN, IMAGENET_STD
from tests.models.zoo_checks import (called_modules, check_train_step, dropout_rates, first_conv_input, init_shapes,
                                     param_count, rngs)



@pytest.mark.parametrize("name, aux, count", [
    ("googlenet", False, 6_624_904), ("googlenet", True, 13_004_888),
    ("inception_v3", False, 23_834_568), ("inception_v3", True, 27_161_264)])
def test_param_count(name, aux, count):
    assert param_count(name, aux_logits=aux) == count


@pytest.mark.parametrize("name", ["googlenet", "inception_v3"])
def test_aux_logits_is_off_by_default(name):
    """A default model trains without heads: nothing is sown (75x75 would be too small for v3's head)."""
    model = create_model(name, num_classes=10)
    x = jax.ShapeDtypeStruct((2, 75, 75, 3), jnp.float32)
    _, state = jax.eval_shape(lambda v, x: model.apply(v, x, train=True, rngs={"dropout": jax.random.key(0)},
                                                       mutable=["batch_stats", "aux_logits"]), init_shapes(model, x), x)
    assert "aux_logits" not in state
    assert param_count(name) == param_count(name, aux_logits=False)


@pytest.mark.parametrize("name, size, eval_size, heads", [
    ("googlenet", 15, 15, ("aux1", "aux2")),
    ("inception_v3", 299, 75, ("aux",))])  # evaluation does not run the head, so 299 is not needed there
def test_aux_logits_are_sown_only_in_training(name, size, eval_size, heads):
    """Shapes only (eval_shape): nothing is compiled or computed."""
    model = create_model(name, num_classes=10, aux_logits=True)
    variables = init_shapes(model, jnp.zeros((1, size, size, 3)))

    def run(model, size: int, train: bool):
        x = jnp.zeros((2, size, size, 3))
        return jax.eval_shape(lambda v: model.apply(v, x, train=train, rngs={"dropout": rngs()["dropout"]},
                                                    mutable=["batch_stats", "aux_logits"]), variables)

    logits, state = run(model, size, train=True)
    assert logits.shape == (2, 10)
    assert {k: [a.shape for a in v] for k, v in state["aux_logits"].items()} == {h: [(2, 10)] for h in heads}
    logits, state = run(model, eval_size, train=False)
    assert logits.shape == (2, 10) and "aux_logits" not in state
    _, state = run(model.clone(aux_logits=False), size, train=True)  # no heads run, nothing is sown
    assert "aux_logits" not in state


def test_min_input_sizes_match_torchvision():
    """Derived from the layer tables; torchvision's weights meta says 15 and 75 (min_size)."""
    assert model_info("googlenet").min_input_size == 15
    assert model_info("inception_v3").min_input_size == 75


@pytest.mark.parametrize("name, size, overrides, minimum", [
    ("googlenet", 14, {}, 15), ("inception_v3", 74, {}, 75),
    ("inception_v3", 298, {"aux_logits": True}, 299)])  # the aux head's 5x5 conv needs a 17x17 map
def test_too_small_input_raises(name, size, overrides, minimum):
    model = create_model(name, **overrides)
    with pytest.raises(ValueError, match=f"{name}.* at least {minimum}x{minimum}"):
        init_shapes(model, jnp.zeros((1, size, minimum, 3)))


def test_transform_input_maps_imagenet_normalisation_to_unit_scaling():
    pixels = np.random.default_rng(0).uniform(size=(1, 2, 2, 3)).astype(np.float32)
    normalised = (pixels - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(to_google_scaling(jnp.asarray(normalised, jnp.float32)), (pixels - 0.5) / 0.5,
                               atol=1e-5)


def test_googlenet_train_step_with_aux_heads():
    """Also the numeric forward of the model tests: the eval forward is compared with torchvision in
    tests/convert/test_parity_inception.py; a compiled eval forward here would double the compile time."""
    aux = check_train_step("googlenet", 32, num_classes=10, aux_logits=True).aux_logits
    assert {k: [a.shape for a in v] for k, v in aux.items()} == {"aux1": [(2, 10)], "aux2": [(2, 10)]}


def test_overrides():
    assert param_count("googlenet", act="prelu") > param_count("googlenet")  # act reaches every BasicConv
    ran = called_modules("inception_v3", 75, dropout=0.2)
    assert [m.rate for m in ran if isinstance(m, nn.Dropout)] == [0.2]
    assert {m.epsilon for m in ran if isinstance(m, nn.BatchNorm)} == {1e-3}  # torchvision's, on every BN
    # aux_dropout reaches both heads (the main dropout stays 0.2)
    assert sorted(dropout_rates("googlenet", 32, aux_logits=True, aux_dropout=0.5)) == [0.2, 0.5, 0.5]


@pytest.mark.parametrize("name", ["googlenet", "inception_v3"])
def test_transform_input_rescales_what_the_first_convolution_sees(name):
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 75, 75, 3)), jnp.float32)
    np.testing.assert_array_equal(first_conv_input(name, x), x)
    np.testing.assert_allclose(first_conv_input(name, x, transform_input=True), to_google_scaling(x), rtol=1e-6)
