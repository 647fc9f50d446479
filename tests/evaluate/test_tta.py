"""Test-time augmentation through the real exact-evaluation path (pad + mask over 4 devices): the averaged
probabilities are those of the views made by hand, a mirror-symmetric model is unchanged by flip TTA."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.data.pipeline import DeviceSplit
from cnnjax.evaluate import tta
from cnnjax.evaluate.exact import make_predict_fn, predict_logits
from cnnjax.models import create_model
from cnnjax.sharding import make_mesh

EPS = float(np.finfo(np.float32).eps)
N, H, W = 10, 8, 8  # 10 examples in batches of 4: the last batch is padded and masked
MEAN, STD = (0.5,), (0.25,)


@pytest.fixture(scope="module")
def setup():
    model = create_model("mlp", 10, hidden=(16,))
    variables = model.init(jax.random.key(0), jnp.zeros((1, H, W, 1)), train=False)
    images = np.random.default_rng(0).integers(0, 256, (N, H, W, 1), dtype=np.uint8)
    return model, variables, images, make_mesh()


@functools.cache
def _predict_fn(model, mesh, mode):  # one compile per mode
    return make_predict_fn(model, MEAN, STD, mesh, tta=mode)


def _probs(model, variables, images, mesh, mode):
    """Softmax of the logits the exact evaluation returns for `images` with test-time augmentation `mode`."""
    data = DeviceSplit(jnp.asarray(images), jnp.zeros(len(images), jnp.int32))
    logits = predict_logits(_predict_fn(model, mesh, mode), variables, data, 4, mesh)
    logits = logits.astype(np.float64) - logits.max(1, keepdims=True)
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def test_tta_averages_the_probabilities_of_the_hand_made_views(setup):
    model, variables, images, mesh = setup
    plain = lambda x: _probs(model, variables, x, mesh, "none")  # noqa: E731
    p = tta.crop_padding(H, W)
    padded = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
    crops = [padded[:, y:y + H, x:x + W] for y in (0, p, 2 * p) for x in (0, p, 2 * p) if (y == x == p) or
             (y != p and x != p)]  # 4 corners and the centre
    mirror = lambda x: x[:, :, ::-1]  # noqa: E731
    expected = {"flip": [images, mirror(images)], "crops": crops, "flip_crops": crops + [mirror(c) for c in crops]}
    for mode, views in expected.items():
        want = np.mean([plain(v) for v in views], axis=0)
        got = _probs(model, variables, images, mesh, mode)
        np.testing.assert_allclose(got, want, rtol=0, atol=8 * EPS * len(views))  # float32 softmax and mean
        assert np.abs(got - plain(images)).max() > 1e-3  # this model is not invariant: the views changed it


def test_flip_tta_of_a_mirror_symmetric_model_equals_no_tta(setup):
    model, variables, images, mesh = setup
    kernel = variables["params"]["Dense_0"]["kernel"].reshape(H, W, 1, -1)  # flatten order is (H, W, C)
    symmetric = (kernel + kernel[:, ::-1]) / 2  # the first layer sees an image and its mirror alike
    params = {**variables["params"], "Dense_0": {**variables["params"]["Dense_0"],
                                                 "kernel": symmetric.reshape(H * W, -1)}}
    variables = {**variables, "params": params}
    plain, flipped = (_probs(model, variables, images, mesh, mode) for mode in ("none", "flip"))
    np.testing.assert_allclose(flipped, plain, rtol=0, atol=H * W * EPS)  # the sum over pixels in another order
    crops = _probs(model, variables, images, mesh, "crops")
    assert np.abs(crops - plain).max() > 1e-3  # symmetric, but not shift-invariant


def test_an_unknown_mode_is_one_line():
    with pytest.raises(tta.TtaError, match="unknown test-time augmentation 'bogus'; choose one of none, flip"):
        tta.check_mode("bogus")
