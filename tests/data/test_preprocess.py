"""Preprocessing kinds (seed 004 §2), checked by invariants of `apply`'s output on the training sample itself,
plus the on-disk cache of their statistics and the config errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from cnnjax.config import ConfigError, base_config, validate
from cnnjax.data import preprocess
from cnnjax.data.preprocess import EPSILON, PreprocessError

EPS32 = float(np.finfo(np.float32).eps)


def _out(kind: str, images: np.ndarray) -> np.ndarray:
    """`apply` of the statistics of `images` to `images` themselves, as float64 for measuring."""
    return np.asarray(preprocess.apply(preprocess.compute(kind, images), images), np.float64)


def _rounding(out: np.ndarray, terms: int = 1) -> float:
    """Float32 rounding bound of sums of `terms` products of size up to max |out| (plus the input's rounding)."""
    return 4 * (terms + 1) * EPS32 * float(np.abs(out).max())


@pytest.fixture(scope="module")
def fmnist(fashion_mnist) -> np.ndarray:
    return fashion_mnist.train.images[:300]


@pytest.fixture(scope="module")
def correlated() -> np.ndarray:
    """(600, 4, 4, 2) uint8 images whose pixels are correlated (a few latent factors) and whose last 6 pixels
    take only the values 100/101, a variance (~3.8e-6 in [0, 1] units) below the seed's epsilon: so the
    whitened covariance S / (S + eps) is ~1 on some components and well below 1 on others."""
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(600, 5)) @ rng.normal(size=(5, 32)) * 25 + 128
    latent[:, -6:] = 100 + rng.integers(0, 2, size=(600, 6))
    return np.clip(np.round(latent), 0, 255).astype(np.uint8).reshape(600, 4, 4, 2)


def test_standardize_gives_per_channel_mean_0_std_1(fmnist):
    out = _out("standardize", fmnist).reshape(-1, 1)
    tol = _rounding(out)
    assert np.abs(out.mean(0)).max() <= tol
    assert np.abs(out.std(0) - 1).max() <= tol


def test_center_subtracts_the_channel_mean_only(fmnist):
    out = _out("center", fmnist).reshape(-1, 1)
    tol = _rounding(out)
    assert np.abs(out.mean(0)).max() <= tol
    assert np.abs(out.std(0) - (fmnist / 255.0).std()).max() <= tol  # not scaled


def test_pixel_mean_makes_the_mean_image_zero(fmnist):
    out = _out("pixel_mean", fmnist)
    assert np.abs(out.mean(0)).max() <= _rounding(out)
    assert np.abs(out.std(0)).max() > 0.1  # per pixel, not the whole image zeroed


def test_minmax_spans_exactly_minus_1_to_1_per_channel_of_the_training_data():
    rng = np.random.default_rng(1)
    images = rng.integers([20, 0, 90], [201, 256, 91], size=(200, 5, 5, 3)).astype(np.uint8)  # channel 2 constant
    out = _out("minmax", images).reshape(-1, 3)
    tol = _rounding(out)
    assert np.abs(out).max() <= 1 + tol
    # the training split's range (not uint8's 0..255) maps to [-1, 1]: channel 0 (20..200) hits both ends
    np.testing.assert_allclose(out[:, :2].min(0), -1, atol=tol)
    np.testing.assert_allclose(out[:, :2].max(0), 1, atol=tol)
    assert np.abs(out[:, 2]).max() <= tol  # a constant channel maps to 0 instead of dividing by 0


def test_pca_whitening_covariance_is_s_over_s_plus_eps(correlated):
    _, eigenvalues, _ = preprocess.eigen(correlated)
    shrink = eigenvalues / (eigenvalues + EPSILON)
    assert shrink.max() > 0.999 and shrink.min() < 0.5  # both regimes (S >> eps, S < eps) are exercised
    out = _out("pca_whiten", correlated).reshape(len(correlated), -1)
    cov = out.T @ out / len(out)
    np.testing.assert_allclose(cov, np.diag(shrink), atol=_rounding(out, out.shape[1]) * np.abs(out).max())


def test_zca_is_pca_rotated_back_and_the_whitening_closest_to_the_input(correlated):
    mean, _, eigenvectors = preprocess.eigen(correlated)
    n = len(correlated)
    pca = _out("pca_whiten", correlated).reshape(n, -1)
    zca = _out("zca", correlated).reshape(n, -1)
    np.testing.assert_allclose(zca, pca @ eigenvectors.T, atol=_rounding(pca, pca.shape[1]))
    centred = correlated.reshape(n, -1) / 255.0 - mean.reshape(-1)
    rotation = np.linalg.qr(np.random.default_rng(2).normal(size=(pca.shape[1],) * 2))[0]
    distance = {name: np.linalg.norm(x - centred) for name, x in
                (("zca", zca), ("pca", pca), ("rotated", pca @ rotation))}  # every one a whitening of the data
    assert distance["zca"] < min(distance["pca"], distance["rotated"])


def test_whitening_large_images_is_refused_in_one_line():
    with pytest.raises(PreprocessError, match="224x224x3 images needs a 150528x150528 covariance") as err:
        preprocess.compute("zca", np.zeros((2, 224, 224, 3), np.uint8))
    assert "\n" not in str(err.value) and "standardize" in str(err.value)


def test_statistics_are_cached_and_a_damaged_cache_file_is_recomputed(correlated, tmp_path, caplog):
    first = preprocess.cached("zca", correlated, tmp_path)
    (path,) = tmp_path.glob("zca-*.npz")
    written = path.stat().st_mtime_ns
    again = preprocess.cached("zca", correlated, tmp_path)
    assert path.stat().st_mtime_ns == written  # read, not recomputed (a miss rewrites the file)
    np.testing.assert_array_equal(again.matrix, first.matrix)
    np.testing.assert_array_equal(first.matrix, preprocess.compute("zca", correlated).matrix)

    other = preprocess.cached("zca", correlated[:300], tmp_path)  # other examples: another key, another file
    assert len(list(tmp_path.glob("zca-*.npz"))) == 2 and not np.array_equal(other.matrix, first.matrix)

    with np.load(path) as saved:  # content changed behind its checksum (same key): not trusted
        fields = dict(saved)
    np.savez(path, **{**fields, "shift": fields["shift"] + 0.5})
    with caplog.at_level(logging.WARNING, logger="cnnjax"):
        tampered = preprocess.cached("zca", correlated, tmp_path)
    np.testing.assert_array_equal(tampered.shift, first.shift)
    path.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="cnnjax"):
        repaired = preprocess.cached("zca", correlated, tmp_path)
    np.testing.assert_array_equal(repaired.matrix, first.matrix)
    assert sum("damaged preprocessing statistics" in r.message for r in caplog.records) == 2
    assert preprocess.load(path) is not None  # rewritten whole


@pytest.mark.parametrize("overrides, message", [
    ({"preprocess": "bogus"}, "unknown preprocess 'bogus'; choose one of standardize, center, pixel_mean"),
    ({"preprocess": "zca", "input_pipeline": "stream"}, "preprocess='zca' needs the in-memory pipeline"),
])
def test_config_errors(overrides, message):
    config = base_config()
    for key, value in overrides.items():
        config[key] = value
    with pytest.raises(ConfigError, match=message) as err:
        validate(config)
    assert "\n" not in str(err.value)
