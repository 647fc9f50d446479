"""RandAugment (Cubuk et al. 2020): `num_ops` ops drawn uniformly per image from 14, each at magnitude M/30
of its range, with a random sign where the op has one (torchvision's list and ranges).

The geometric ops reuse `geometric.warp_about_centre`; the PIL-style ops (autocontrast, equalize,
posterize, solarize, the enhance family) work on the [0, 255] float pixels and round where PIL is integer.
The op is picked with `lax.switch`, so every image of a batch may take a different op under one jit.
Solarize's threshold runs 256 -> 0 (as the paper's PIL code), so magnitude 0 is the identity for every op
that has a magnitude.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

from cnnjax.data.augment.geometric import rotation, shear_matrix, warp_about_centre
from cnnjax.data.augment.registry import Op, number, register_op, require

MAX_MAGNITUDE = 30  # torchvision's num_bins - 1
GRAY = (0.299, 0.587, 0.114)  # PIL's "L" conversion weights (a constant: no JAX array at import)
# (u, image, magnitude in [0, 1]) -> image; u is a uniform in [0, 1) that picks the sign (one threefry call
# for the whole op: each call costs compile time, and lax.switch compiles every branch)
Branch = Callable[[jax.Array, jax.Array, float], jax.Array]


def _signed(u: jax.Array, value: float) -> jax.Array:
    return jnp.where(u < 0.5, value, -value)


def _gray(image: jax.Array) -> jax.Array:
    return image @ jnp.asarray(GRAY)[:, None] if image.shape[-1] == 3 else image.mean(-1, keepdims=True)


def _blend(degenerate: jax.Array, image: jax.Array, factor: jax.Array) -> jax.Array:
    """PIL's ImageEnhance: degenerate + factor * (image - degenerate), clipped to [0, 255]."""
    return jnp.clip(degenerate + factor * (image - degenerate), 0.0, 255.0)


def _enhance(degenerate: Callable[[jax.Array], jax.Array]) -> Branch:
    def branch(u: jax.Array, image: jax.Array, m: float) -> jax.Array:
        return _blend(degenerate(image), image, 1.0 + _signed(u, 0.9 * m))
    return branch


def _smooth(image: jax.Array) -> jax.Array:
    """PIL's SMOOTH filter (centre 5, neighbours 1, / 13) inside, the border pixels unchanged."""
    kernel = jnp.ones((3, 3)).at[1, 1].set(5.0) / 13.0
    inner = jax.vmap(lambda c: jax.scipy.signal.convolve2d(c, kernel, mode="valid"), 2, 2)(image)
    return image.at[1:-1, 1:-1].set(jnp.round(inner))


def _identity(u: jax.Array, image: jax.Array, m: float) -> jax.Array:  # noqa: ARG001
    return image


# The geometric ops as (u, image shape, magnitude) -> (matrix, shift) of `warp_about_centre`: one warp per
# op step serves all five (an identity warp samples integer points, exactly), instead of one per branch.
Affine = Callable[[jax.Array, tuple[int, ...], float], tuple[jax.Array, jax.Array]]


def _shear(axis: int) -> Affine:
    return lambda u, shape, m: (shear_matrix(_signed(u, 0.3 * m), axis), jnp.zeros(2))


def _translate(axis: int) -> Affine:
    return lambda u, shape, m: (jnp.eye(2), jnp.zeros(2).at[axis].set(_signed(u, 150 / 331 * shape[axis] * m)))


def _rotate(u: jax.Array, shape: tuple[int, ...], m: float) -> tuple[jax.Array, jax.Array]:
    return rotation(jnp.deg2rad(_signed(u, 30.0 * m))), jnp.zeros(2)


def _no_move(u: jax.Array, shape: tuple[int, ...], m: float) -> tuple[jax.Array, jax.Array]:
    return jnp.eye(2), jnp.zeros(2)


def _posterize(u: jax.Array, image: jax.Array, m: float) -> jax.Array:
    drop = int(round(4 * m))  # keep 8 - drop bits
    return jnp.floor(jnp.round(image) / 2 ** drop) * 2 ** drop


def _solarize(u: jax.Array, image: jax.Array, m: float) -> jax.Array:
    return jnp.where(image >= 256.0 * (1 - m), 255.0 - image, image)


def _auto_contrast(u: jax.Array, image: jax.Array, m: float) -> jax.Array:
    low, high = image.min((0, 1)), image.max((0, 1))
    span = jnp.where(high > low, high - low, 1.0)
    return jnp.where(high > low, (image - low) * (255.0 / span), image)


def _equalize(u: jax.Array, image: jax.Array, m: float) -> jax.Array:
    """PIL's ImageOps.equalize per channel: lut[i] = (pixels below i + step // 2) // step."""
    def channel(c: jax.Array) -> jax.Array:
        values = jnp.clip(jnp.round(c), 0, 255).astype(jnp.int32)
        hist = jnp.bincount(values.ravel(), length=256)
        last = hist[255 - jnp.argmax(hist[::-1] > 0)]
        step = (hist.sum() - last) // 255
        below = jnp.cumsum(hist) - hist
        lut = jnp.clip((below + step // 2) // jnp.maximum(step, 1), 0, 255)
        return jnp.where(step > 0, lut[values].astype(c.dtype), c)
    return jax.vmap(channel, 2, 2)(image)


GEOMETRIC: dict[str, Affine] = {
    "shear_x": _shear(axis=1),
    "shear_y": _shear(axis=0),
    "translate_x": _translate(axis=1),
    "translate_y": _translate(axis=0),
    "rotate": _rotate,
}
PIXEL: dict[str, Branch] = {
    "identity": _identity,  # first: what the pixel switch does when a geometric op was drawn
    "brightness": _enhance(jnp.zeros_like),
    "color": _enhance(lambda x: jnp.broadcast_to(_gray(x), x.shape)),
    "contrast": _enhance(lambda x: jnp.broadcast_to(jnp.round(_gray(x).mean()), x.shape)),
    "sharpness": _enhance(_smooth),
    "posterize": _posterize,
    "solarize": _solarize,
    "auto_contrast": _auto_contrast,
    "equalize": _equalize,
}
NUM_OPS = len(GEOMETRIC) + len(PIXEL)  # the 14 ops drawn from


def step(u: jax.Array, sign: jax.Array, image: jax.Array, m: float) -> jax.Array:
    """One RandAugment op: index floor(u * 14) < 5 a geometric op (then the pixel identity), else a pixel op."""
    index = jnp.minimum(jnp.floor(u * NUM_OPS).astype(jnp.int32), NUM_OPS - 1)
    geometric = [functools.partial(f, shape=image.shape, m=m) for f in (*GEOMETRIC.values(), _no_move)]
    matrix, shift = jax.lax.switch(jnp.minimum(index, len(GEOMETRIC)), geometric, sign)
    image = warp_about_centre(image, matrix, shift)
    pixel = [functools.partial(f, m=m) for f in PIXEL.values()]
    return jax.lax.switch(jnp.maximum(index - len(GEOMETRIC), 0), pixel, sign, image)


@register_op("randaugment")
def randaugment(num_ops: int = 2, magnitude: float = 9) -> Op:
    """`num_ops` ops in sequence, each drawn uniformly from the 14 of GEOMETRIC and PIXEL, at `magnitude` in
    [0, 30]."""
    require(type(num_ops) is int and num_ops >= 1, f"randaugment(num_ops=...) takes an integer >= 1, got {num_ops!r}")
    m = number("randaugment", "magnitude", magnitude, 0, MAX_MAGNITUDE) / MAX_MAGNITUDE

    def op(key: jax.Array, image: jax.Array) -> jax.Array:
        for pick, sign in jax.random.uniform(key, (num_ops, 2)):
            image = step(pick, sign, image, m)
        return image
    return op
