"""Random erasing (Zhong et al. 2020): blank one random rectangle of the image, as an occlusion."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from cnnjax.data.augment.geometric import box_uniforms, random_box
from cnnjax.data.augment.registry import Op, interval, number, register_op, require


@register_op("random_erasing")
def random_erasing(prob: float = 0.5, scale: tuple[float, float] = (0.02, 0.33),
                   ratio: tuple[float, float] = (0.3, 3.3), value: str | float = "random") -> Op:
    """With probability `prob`, fill a rectangle of area fraction in `scale` and aspect in `ratio`
    (log-uniform, as torchvision) with per-pixel uniform noise in [0, 255] (value='random', the paper's
    choice) or a constant pixel value; if none of the drawn rectangles fits, the image is left as is."""
    p = number("random_erasing", "prob", prob, 0, 1)
    scale = interval("random_erasing", "scale", scale, 0, 1)
    ratio = interval("random_erasing", "ratio", ratio, 0, math.inf)
    require(ratio[0] > 0, f"random_erasing(ratio=...) takes aspect ratios > 0, got {ratio!r}")
    random_fill = value == "random"
    if not random_fill:
        require(isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 255,
                f"random_erasing(value=...) takes 'random' or a pixel value in [0, 255], got {value!r}")

    def op(key: jax.Array, image: jax.Array) -> jax.Array:
        height, width, _ = image.shape
        k_draw, k_fill = jax.random.split(key) if random_fill else (key, key)
        u = jax.random.uniform(k_draw, (box_uniforms() + 1,))
        top, left, h, w, found = random_box(u[1:], height, width, scale, ratio)
        rows, cols = jnp.arange(height)[:, None, None], jnp.arange(width)[None, :, None]
        inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
        erase = found & (u[0] < p)
        fill = jax.random.uniform(k_fill, image.shape, jnp.float32, 0, 255) if random_fill else jnp.float32(value)
        return jnp.where(erase & inside, fill, image)
    return op
