"""Invariants of the augmentation ops, called as the pipeline calls them (`augment.apply` on a batch).

Float input is returned unclipped (the ops' own arithmetic), uint8 input rounded and clipped once.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import matplotlib.colors
import numpy as np
import pytest

from cnnjax.data import augment
from cnnjax.data.augment import color, rand_augment

EPS = float(np.finfo(np.float32).eps)
KEY = jax.random.key(0)
FAST_COMPILE = {"xla_backend_optimization_level": 0}  # what is tested is the ops' arithmetic, not their speed


def _apply(spec: str, images, context: augment.AugmentContext | None = None, key=KEY) -> np.ndarray:
    run = jax.jit(lambda k, x: augment.apply(augment.parse(spec, context), k, x))
    return np.asarray(run.lower(key, images).compile(FAST_COMPILE)(key, images))


def _rgb(shape=(4, 12, 12, 3), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


def _rank2_context() -> augment.AugmentContext:
    """RGB data whose blue is the mean of red and green: covariance of rank 2, so p_3 is known."""
    rg = np.random.default_rng(1).integers(0, 256, (50, 6, 6, 2)).astype(np.float64)
    images = np.concatenate([rg, rg.mean(-1, keepdims=True)], -1)
    return augment.AugmentContext(3, *augment.rgb_pca(images))


def test_flip_twice_is_identity_and_once_mirrors():
    images = _rgb()
    for name, axis in (("flip_lr", 2), ("flip_ud", 1)):
        np.testing.assert_array_equal(_apply(f"{name}(prob=1.0)", images), np.flip(images, axis))
        np.testing.assert_array_equal(_apply(f"{name}(prob=1.0)|{name}(prob=1.0)", images), images)


def test_every_op_keeps_shape_and_dtype():
    """Abstractly (the real runs on uint8 batches are the pipeline tests')."""
    context = _rank2_context()
    uint8 = np.zeros((3, 10, 10, 3), np.uint8)
    for name in augment.op_names():
        for images in (uint8, uint8.astype(np.float32)):
            out = jax.eval_shape(lambda x: augment.apply(augment.parse(name, context), KEY, x), images)
            assert (out.shape, out.dtype) == (images.shape, images.dtype), name


IDENTITY_SPECS = ["rotate(degrees=0)", "translate(max_fraction=0)", "shear(degrees=0)", "zoom(range=(1, 1))",
                  "random_scale(range=(1, 1))", "random_resized_crop(scale=(1, 1), ratio=(1, 1))",
                  "channel_shift(max_delta=0)", "fancy_pca(std=0.0, eig='imagenet')", "random_erasing(prob=0.0)",
                  "hsv_jitter(power=(1, 1), factor=(1, 1), shift=(0, 0), hue_shift=(0, 0))"]


def test_identity_parameters_give_the_image_back():
    """Every op at its identity setting, composed in one spec (one compile); the HSV round trip is within a
    few float32 ulps of 255."""
    images = _rgb()
    tolerance = 8 * 255 * EPS  # a handful of rounding steps of RGB -> HSV -> RGB at the top of the range
    np.testing.assert_allclose(_apply("|".join(IDENTITY_SPECS), images), images, rtol=0, atol=tolerance)


def test_rotate_by_90_degrees_is_rot90():
    image = _rgb((1, 8, 8, 2))
    expected = np.rot90(image, k=1, axes=(1, 2))
    np.testing.assert_allclose(_apply("rotate(degrees=(90, 90))", image), expected, rtol=0, atol=8 * 255 * EPS)
    assert not np.allclose(_apply("rotate(degrees=(-90, -90))", image), expected)


def test_translate_shear_and_scaling_move_content_as_their_matrices_say():
    """On a ramp image[y, x] = x (linear, so bilinear sampling is exact): a column shift adds a constant,
    a column scaling by s changes the slope to 1/s, a row shear leaves columns' values as they are."""
    ramp = np.broadcast_to(np.arange(16, dtype=np.float32)[None, :, None], (1, 16, 16, 1)).copy()
    crop = _apply("random_resized_crop(scale=(0.25, 0.25), ratio=(1, 1))", ramp)[0, :, :, 0]
    np.testing.assert_allclose(np.diff(crop, axis=1), 0.5, atol=16 * 16 * EPS)  # a 8x8 box stretched to 16x16
    zoomed = _apply("random_scale(range=(2, 2))", ramp)[0, :, :, 0]
    np.testing.assert_allclose(np.diff(zoomed, axis=1), 0.5, atol=16 * 16 * EPS)
    moved = _apply("translate(max_fraction=0.25)", ramp)[0, 4:12, 4:12, 0]  # at most 4 px: interior stays inside
    assert np.ptp(moved - ramp[0, 4:12, 4:12, 0]) < 16 * 16 * EPS and abs(moved - ramp[0, 4:12, 4:12, 0]).max() > 0
    columns = np.broadcast_to(np.arange(16, dtype=np.float32)[:, None, None], (1, 16, 16, 1)).copy()  # rows ramp
    sheared = _apply("shear(degrees=(30, 30))", columns)[0, 2:14, 6:10, 0]  # x-shear keeps each row's value
    np.testing.assert_allclose(sheared, columns[0, 2:14, 6:10, 0], atol=16 * 16 * EPS)


def test_fancy_pca_adds_one_rgb_vector_per_image_along_the_training_components():
    context = _rank2_context()
    eigvals, eigvecs = np.asarray(context.rgb_eigvals), np.asarray(context.rgb_eigvecs)
    assert eigvals[2] < 1e-9 * eigvals[0]  # blue = (red + green) / 2: no variance along p_3
    n, std = 4000, 0.1
    images = _rgb((n, 2, 2, 3))
    shift = _apply(f"fancy_pca(std={std})", images, context) - images
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:, :1, :1], shift.shape), atol=4 * 255 * EPS)
    delta = shift[:, 0, 0].astype(np.float64)
    assert abs(delta @ eigvecs[:, 2]).max() < 4 * 255 * EPS  # in the span of p_1, p_2 (the data's)
    cov = eigvecs.T @ np.cov(delta.T) @ eigvecs  # in the eigenbasis: diag(std^2 lambda_1, std^2 lambda_2, 0)
    tolerance = 5 * math.sqrt(2 / n)  # five standard errors of a variance estimated from n normal draws
    np.testing.assert_allclose(np.diag(cov)[:2] / (std ** 2 * eigvals[:2]), 1.0, atol=tolerance)
    assert abs(cov[0, 1]) / (std ** 2 * math.sqrt(eigvals[0] * eigvals[1])) < tolerance
    imagenet = (_apply(f"fancy_pca(std={std}, eig='imagenet')", images) - images)[:, 0, 0]
    along_p1 = imagenet @ np.asarray(color.IMAGENET_PCA_VECS)[:, 0]
    assert abs(along_p1.std() / (std * 255 * color.IMAGENET_PCA_STD[0]) - 1) < tolerance


def test_rgb_pca_is_the_eigendecomposition_of_the_pixel_covariance():
    images = np.random.default_rng(2).integers(0, 256, (9, 5, 7, 3), dtype=np.uint8)
    eigvals, eigvecs = map(np.asarray, augment.rgb_pca(images))
    cov = np.cov(images.reshape(-1, 3).astype(np.float64).T, bias=True)
    np.testing.assert_allclose(eigvecs @ np.diag(eigvals) @ eigvecs.T, cov, atol=1e-9 * np.abs(cov).max())
    assert list(eigvals) == sorted(eigvals, reverse=True)


def test_fancy_pca_on_gray_data_is_a_one_line_error():
    gray = np.zeros((4, 6, 6, 1), np.uint8)
    with pytest.raises(augment.AugmentSpecError, match="needs RGB images, this dataset has 1 channel"):
        augment.parse("fancy_pca", augment.context_for("fancy_pca", gray, 1))
    with pytest.raises(augment.AugmentSpecError, match="needs the training split's RGB PCA"):
        _apply("fancy_pca", _rgb(), augment.AugmentContext(3))


def test_rgb_to_hsv_matches_matplotlib_and_round_trips():
    rgb = _rgb((64, 3)) / 255.0
    convert = jax.jit(lambda x: (color.rgb_to_hsv(x), color.hsv_to_rgb(color.rgb_to_hsv(x))))
    hsv, back = convert.lower(rgb).compile(FAST_COMPILE)(rgb)
    np.testing.assert_allclose(hsv, matplotlib.colors.rgb_to_hsv(rgb), atol=8 * EPS)
    np.testing.assert_allclose(back, rgb, atol=8 * EPS)


def test_hsv_jitter_raises_scales_and_shifts_saturation_and_value():
    """S' = S^2 / 2 + 0.1 and V' likewise, H' = H + 0.25 (wrapping): every parameter reaches its channel."""
    images = _rgb()
    hsv = matplotlib.colors.rgb_to_hsv(images / 255.0)
    out = matplotlib.colors.rgb_to_hsv(_apply("hsv_jitter(power=(2, 2), factor=(0.5, 0.5), shift=(0.1, 0.1), "
                                              "hue_shift=(0.25, 0.25))", images) / 255.0)
    tolerance = 16 * EPS
    np.testing.assert_allclose(out[..., 1:], hsv[..., 1:] ** 2 / 2 + 0.1, atol=tolerance)
    hue_error = (out[..., 0] - hsv[..., 0] - 0.25 + 0.5) % 1.0 - 0.5
    np.testing.assert_allclose(hue_error, 0.0, atol=tolerance)


def test_channel_shift_adds_one_value_to_every_channel_within_the_image_range():
    images = np.full((8, 4, 4, 3), 100.0, np.float32)
    images[:, 0, 0] = (0.0, 50.0, 255.0)  # the image's own range is [0, 255]: no clipping of the 100s
    out = _apply("channel_shift(max_delta=30)", images)
    shifts = out[:, 1:, 1:] - 100.0
    assert np.ptp(shifts.reshape(8, -1), axis=1).max() == 0 and 0 < abs(shifts).max() <= 30


def test_random_erasing_blanks_one_rectangle():
    scale = (0.1, 0.3)
    images = np.full((16, 16, 16, 3), 255.0, np.float32)
    out = _apply(f"random_erasing(prob=1.0, scale={scale}, value=0)", images)
    for erased in (out == 0):
        assert (erased == erased[..., :1]).all()  # every channel of a pixel
        rows, cols = np.nonzero(erased[..., 0])
        box = erased[rows.min():rows.max() + 1, cols.min():cols.max() + 1, 0]
        assert box.all()  # the erased pixels fill their bounding box: one rectangle
        area = box.size / (16 * 16)  # rounding the sides moves the area by at most one row and column
        assert scale[0] - 2 * 16 / 256 <= area <= scale[1] + 2 * 16 / 256
    noisy = _apply("random_erasing(prob=1.0)", images)
    assert (noisy < 255).any(axis=(1, 2, 3)).all()  # value='random' fills with noise


def _permutation_image() -> np.ndarray:
    """16x16x3 whose every channel holds each of 0..255 once: autocontrast and equalize leave it as is."""
    rng = np.random.default_rng(3)
    return np.stack([rng.permutation(256).reshape(16, 16) for _ in range(3)], -1).astype(np.uint8)


def test_randaugment_at_magnitude_zero_is_the_identity_on_a_flat_histogram_image():
    image = _permutation_image()
    u = jnp.float32(0.0)
    step = jax.jit(lambda u, x: rand_augment.step(u, jnp.float32(0.25), x, 0.0)).lower(u, image.astype(np.float32))
    step = step.compile(FAST_COMPILE)
    for index in range(rand_augment.NUM_OPS):  # each of the 14 ops, by the index RandAugment draws
        out = np.asarray(step(jnp.float32((index + 0.5) / rand_augment.NUM_OPS), image.astype(np.float32)))
        np.testing.assert_array_equal(np.round(out), image, err_msg=f"op {index}")


BAD_SPECS = {
    "flip_ud(prob=2)": "flip_ud\\(prob=...\\) takes a number in \\[0, 1\\]",
    "rotate(degrees='x')": "rotate\\(degrees=...\\)",
    "shear(degrees=95)": "shear\\(degrees=...\\) takes a number in \\[0, 89\\]",
    "translate(max_fraction=-0.1)": "translate\\(max_fraction=...\\)",
    "zoom(range=(1.1, 0.9))": "zoom\\(range=...\\) takes a pair",
    "random_scale(range=(0, 2))": "random_scale\\(range=...\\) takes factors > 0",
    "random_resized_crop(scale=(0.5, 2))": "random_resized_crop\\(scale=...\\)",
    "random_resized_crop(ratio=(0, 1))": "scale and ratio must be positive",
    "channel_shift(max_delta=300)": "channel_shift\\(max_delta=...\\)",
    "channel_shift(per_channel=1)": "per_channel=...\\) takes True or False",
    "hsv_jitter(power=(0, 4))": "hsv_jitter\\(power=...\\) takes powers > 0",
    "hsv_jitter(shift=0.1)": "hsv_jitter\\(shift=...\\) takes a pair",
    "fancy_pca(std=-1)": "fancy_pca\\(std=...\\)",
    "fancy_pca(eig='cifar')": "fancy_pca\\(eig=...\\) takes 'train' or 'imagenet'",
    "fancy_pca(context=1)": "has no argument 'context'",
    "random_erasing(value='noise')": "random_erasing\\(value=...\\) takes 'random' or a pixel value",
    "random_erasing(ratio=(0, 3))": "random_erasing\\(ratio=...\\) takes aspect ratios > 0",
    "randaugment(num_ops=0)": "randaugment\\(num_ops=...\\) takes an integer >= 1",
    "randaugment(magnitude=31)": "randaugment\\(magnitude=...\\) takes a number in \\[0, 30\\]",
    "rotat": "unknown augmentation 'rotat' \\(did you mean 'rotate'\\?\\)",
}


def test_every_op_parses_and_every_bad_argument_is_a_one_line_error():
    assert len(augment.parse("|".join(augment.op_names()))) == len(augment.op_names())
    for spec, message in BAD_SPECS.items():
        with pytest.raises(augment.AugmentSpecError, match=message) as err:
            augment.parse(spec)
        assert "\n" not in str(err.value), spec
