"""Per-example image ops of the streaming pipeline: decode, Inception-style crops, eval crops (PIL + numpy).

The random-resized crop follows torchvision's definition exactly (area scale, log-uniform aspect ratio,
10 attempts, then a centre crop clamped to the ratio range), so published ImageNet recipes carry over.
All randomness comes from the `np.random.Generator` passed in, which the caller keys by (seed, epoch,
example), so an example's augmentation does not depend on which worker or which run produced it.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

Image_ = Image.Image
Box = tuple[int, int, int, int]  # (top, left, height, width)


def to_image(data: bytes | np.ndarray, channels: int = 3) -> Image_:
    """Encoded JPEG/PNG bytes or a uint8 HxW[xC] array -> a PIL image with `channels` (1 or 3) channels."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        image = Image.open(io.BytesIO(bytes(data)))
    else:
        array = np.asarray(data, np.uint8)
        image = Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array)
    mode = "L" if channels == 1 else "RGB"
    return image if image.mode == mode else image.convert(mode)


def to_array(image: Image_) -> np.ndarray:
    """PIL image -> uint8 HxWxC (C = 1 for grayscale)."""
    array = np.asarray(image, np.uint8)
    return array[..., None] if array.ndim == 2 else array


def random_resized_crop_box(height: int, width: int, rng: np.random.Generator,
                            scale: tuple[float, float] = (0.08, 1.0),
                            ratio: tuple[float, float] = (3 / 4, 4 / 3), attempts: int = 10) -> Box:
    """torchvision's RandomResizedCrop.get_params: a box of area scale*HW and aspect ratio w/h in `ratio`."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(attempts):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    in_ratio = width / height  # fallback: the whole image, clamped to the ratio range, centred
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def crop_resize(image: Image_, box: Box, size: int) -> Image_:
    """The box cut out, then resized to size x size (bilinear, antialiased), as torchvision's resized_crop."""
    top, left, h, w = box
    return image.crop((left, top, left + w, top + h)).resize((size, size), Image.BILINEAR)


def train_example(data: bytes | np.ndarray, rng: np.random.Generator, crop_size: int, channels: int = 3,
                  scale: tuple[float, float] = (0.08, 1.0), flip: bool = True) -> np.ndarray:
    """Decode, random-resized crop to crop_size, horizontal flip with probability 1/2 -> uint8 (S, S, C)."""
    image = to_image(data, channels)
    out = to_array(crop_resize(image, random_resized_crop_box(image.height, image.width, rng, scale), crop_size))
    if flip and rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def resize_shorter(image: Image_, size: int) -> Image_:
    """Shorter side to `size`, aspect kept (the longer side truncated, as torchvision's Resize(int))."""
    w, h = image.size
    if min(w, h) == size:
        return image
    new = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    return image.resize(new, Image.BILINEAR)


def centre_box(height: int, width: int, size: int) -> Box:
    """torchvision's CenterCrop offsets: round((H - size) / 2)."""
    return int(round((height - size) / 2.0)), int(round((width - size) / 2.0)), size, size


def _cut(image: Image_, box: Box) -> np.ndarray:
    top, left, h, w = box
    return to_array(image.crop((left, top, left + w, top + h)))


def eval_example(data: bytes | np.ndarray, crop_size: int, resize_size: int, channels: int = 3) -> np.ndarray:
    """Resize the shorter side to resize_size, then the centre crop_size square -> uint8 (S, S, C)."""
    image = resize_shorter(to_image(data, channels), resize_size)
    return _cut(image, centre_box(image.height, image.width, crop_size))


def ten_crop_boxes(height: int, width: int, size: int) -> list[Box]:
    """The five crops of torchvision's FiveCrop: top-left, top-right, bottom-left, bottom-right, centre."""
    return [(0, 0, size, size), (0, width - size, size, size), (height - size, 0, size, size),
            (height - size, width - size, size, size), centre_box(height, width, size)]


def ten_crop_example(data: bytes | np.ndarray, crop_size: int, resize_size: int, channels: int = 3) -> np.ndarray:
    """The 10-crop protocol (AlexNet, GoogLeNet): 5 crops of the resized image and the same 5 of its mirror,
    in torchvision's TenCrop order -> uint8 (10, S, S, C)."""
    image = resize_shorter(to_image(data, channels), resize_size)
    mirror = image.transpose(Image.FLIP_LEFT_RIGHT)
    boxes = ten_crop_boxes(image.height, image.width, crop_size)
    return np.stack([_cut(im, box) for im in (image, mirror) for box in boxes])
