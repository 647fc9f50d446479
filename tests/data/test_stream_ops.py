"""Crops, flips and resizes of the streaming pipeline against hand computations (torchvision's definitions)."""

from __future__ import annotations

import numpy as np
import pytest

from cnnjax.data.stream import ops
from tests.data.stream_helpers import png


class Scripted:
    """A stand-in for np.random.Generator returning scripted uniform draws and integer offsets."""

    def __init__(self, uniforms: list[float], integers: list[int] = (), randoms: list[float] = ()):
        self.uniforms, self.integers_, self.randoms = list(uniforms), list(integers), list(randoms)

    def uniform(self, low: float, high: float) -> float:
        value = self.uniforms.pop(0)
        assert low <= value <= high
        return value

    def integers(self, low: int, high: int) -> int:
        value = self.integers_.pop(0)
        assert low <= value < high
        return value

    def random(self) -> float:
        return self.randoms.pop(0)


def test_random_resized_crop_box_first_attempt():
    # 100x200 image, area fraction 0.5 -> 10000 px, ratio 1 -> a 100x100 box; top in [0, 0], left in [0, 100].
    rng = Scripted([0.5, 0.0], integers=[0, 37])
    assert ops.random_resized_crop_box(100, 200, rng) == (0, 37, 100, 100)


def test_random_resized_crop_box_rejects_then_falls_back_to_a_centre_crop():
    log43 = np.log(4 / 3)
    # Every attempt asks for the whole area at ratio 4/3: w = round(sqrt(10000 * 4/3)) = 115 > 100, rejected.
    square = Scripted([1.0, log43] * 10)
    assert ops.random_resized_crop_box(100, 100, square) == (0, 0, 100, 100)  # ratio 1 is inside [3/4, 4/3]
    wide = Scripted([1.0, log43] * 10)  # 100x400: w = round(sqrt(40000 * 4/3)) = 231 fits but h = 173 > 100
    # Fallback: the image's ratio 4 exceeds 4/3, so h = 100, w = round(100 * 4/3) = 133, centred: left 133.
    assert ops.random_resized_crop_box(100, 400, wide) == (0, 133, 100, 133)
    tall = Scripted([1.0, -log43] * 10)  # 400x100: ratio 1/4 < 3/4 -> w = 100, h = round(100 / 0.75) = 133
    assert ops.random_resized_crop_box(400, 100, tall) == (133, 0, 133, 100)


def test_random_resized_crop_box_stays_inside_and_in_range():
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, h, w = ops.random_resized_crop_box(50, 80, rng)
        assert 0 <= top and top + h <= 50 and 0 <= left and left + w <= 80 and h > 0 and w > 0


def test_train_example_crop_and_flip_by_hand():
    image = np.random.default_rng(1).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    # A 12x12 box at the left edge, resized 12 -> 12 (identity), then flipped.
    rng = Scripted([0.75, 0.0], integers=[0, 2], randoms=[0.3])
    np.testing.assert_array_equal(ops.train_example(image, rng, 12), image[:, 2:14][:, ::-1])
    rng = Scripted([0.75, 0.0], integers=[0, 3], randoms=[0.7])  # draw >= 0.5: not flipped
    np.testing.assert_array_equal(ops.train_example(image, rng, 12), image[:, 3:15])
    rng = Scripted([0.75, 0.0], integers=[0, 3])
    np.testing.assert_array_equal(ops.train_example(image, rng, 12, flip=False), image[:, 3:15])


def test_train_example_output_shape_and_channels():
    rng = np.random.default_rng(0)
    grey = np.random.default_rng(2).integers(0, 256, (30, 20, 1), dtype=np.uint8)
    assert ops.train_example(grey, rng, 8, channels=1).shape == (8, 8, 1)
    colour = png(np.zeros((30, 20, 3), np.uint8))
    out = ops.train_example(colour, rng, 8)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8


def test_resize_shorter_side_and_centre_crop_by_hand():
    image = ops.to_image(np.zeros((100, 60, 3), np.uint8))
    assert ops.resize_shorter(image, 30).size == (30, 50)  # (width, height)
    assert ops.resize_shorter(ops.to_image(np.zeros((60, 101, 3), np.uint8)), 30).size == (50, 30)
    array = np.random.default_rng(3).integers(0, 256, (100, 60, 3), dtype=np.uint8)
    # Shorter side already 60: no resize; crop 20 at round((100-20)/2) = 40, round((60-20)/2) = 20.
    np.testing.assert_array_equal(ops.eval_example(array, 20, 60), array[40:60, 20:40])
    assert ops.centre_box(7, 8, 4) == (2, 2, 4, 4)  # round(1.5) = 2 (banker's), round(2.0) = 2
    assert ops.eval_example(array, 224, 256).shape == (224, 224, 3)


def test_eval_of_png_bytes_equals_eval_of_the_array():
    array = np.random.default_rng(4).integers(0, 256, (33, 47, 3), dtype=np.uint8)
    np.testing.assert_array_equal(ops.eval_example(png(array), 16, 20), ops.eval_example(array, 16, 20))


def test_ten_crop_by_hand():
    array = np.random.default_rng(5).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    crops = ops.ten_crop_example(array, 5, 7)  # shorter side 7: no resize
    assert crops.shape == (10, 5, 5, 3)
    mirror = array[:, ::-1]
    for k, image in enumerate((array, mirror)):
        want = [image[:5, :5], image[:5, 4:], image[2:, :5], image[2:, 4:], image[1:6, 2:7]]
        for i, w in enumerate(want):
            np.testing.assert_array_equal(crops[5 * k + i], w, err_msg=f"crop {5 * k + i}")
    np.testing.assert_array_equal(crops[9], crops[4][:, ::-1])  # the centre crop of the mirror = mirrored centre


@pytest.mark.parametrize("size", [(5, 40), (40, 5)])
def test_tiny_or_thin_images_still_give_full_crops(size):
    rng = np.random.default_rng(0)
    array = np.full((*size, 3), 9, np.uint8)
    assert ops.train_example(array, rng, 16).shape == (16, 16, 3)
