"""Geometric ops: crops, flips and the affine family (Keras ImageDataGenerator's list: translate, rotate,
shear, zoom; random scaling; Inception's random-resized crop).

Every affine op only builds a 2x2 matrix and an offset; `warp` (bilinear, constant fill) does the sampling,
so all of them treat borders and interpolation the same way. Coordinates are (row, column) pixel indices;
a matrix maps an OUTPUT pixel to the input point it samples (the inverse transform).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from cnnjax.data.augment.registry import Op, interval, number, register_op, require, symmetric


def warp(image: jax.Array, matrix: jax.Array, offset: jax.Array, fill: float = 0.0) -> jax.Array:
    """Samples `image` (HWC) at matrix @ (row, col) + offset for every output pixel: bilinear, `fill` outside."""
    h, w, _ = image.shape
    grid = jnp.stack(jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                                  indexing="ij"))
    coords = jnp.einsum("ij,jhw->ihw", matrix.astype(jnp.float32), grid) + offset.astype(jnp.float32)[:, None, None]

    def sample(channel: jax.Array) -> jax.Array:
        return jax.scipy.ndimage.map_coordinates(channel, list(coords), order=1, mode="constant", cval=fill)

    return jax.vmap(sample, in_axes=2, out_axes=2)(image)


def warp_about_centre(image: jax.Array, matrix: jax.Array, shift: jax.Array | None = None,
                      fill: float = 0.0) -> jax.Array:
    """`warp` with the image centre fixed: input = matrix @ (out - c) + c - shift (`shift` moves the content)."""
    h, w, _ = image.shape
    centre = jnp.array([(h - 1) / 2, (w - 1) / 2], jnp.float32)
    offset = centre - matrix.astype(jnp.float32) @ centre
    return warp(image, matrix, offset if shift is None else offset - shift, fill)


def rotation(radians: jax.Array) -> jax.Array:
    """Inverse matrix of a counter-clockwise rotation (as jnp.rot90 for +90 degrees)."""
    c, s = jnp.cos(radians), jnp.sin(radians)
    return jnp.array([[c, s], [-s, c]])


def shear_matrix(tangent: jax.Array, axis: int) -> jax.Array:
    """Inverse matrix of a shear along columns (axis=1: x += t * y) or rows (axis=0: y += t * x)."""
    m = jnp.eye(2)
    return m.at[axis, 1 - axis].set(-tangent)


def uniform(key: jax.Array, bounds: tuple[float, float], shape: tuple[int, ...] = ()) -> jax.Array:
    return jax.random.uniform(key, shape, jnp.float32, bounds[0], bounds[1])


@register_op("random_crop")
def random_crop(padding: int = 4) -> Op:
    """Zero-pad by `padding` pixels, then crop back to the original size at a random offset."""
    require(type(padding) is int and padding >= 0, f"random_crop(padding=...) takes an integer >= 0, got {padding!r}")
    def op(key: jax.Array, image: jax.Array) -> jax.Array:
        padded = jnp.pad(image, ((padding, padding), (padding, padding), (0, 0)))
        dy, dx = jax.random.randint(key, (2,), 0, 2 * padding + 1, dtype=jnp.int32)
        return jax.lax.dynamic_slice(padded, (dy, dx, jnp.int32(0)), image.shape)
    return op


def _flip(name: str, axis: int, prob: float) -> Op:
    p = number(name, "prob", prob, 0, 1)
    def op(key: jax.Array, image: jax.Array) -> jax.Array:
        return jnp.where(jax.random.uniform(key, dtype=jnp.float32) < p, jnp.flip(image, axis), image)
    return op


@register_op("flip_lr")
def flip_lr(prob: float = 0.5) -> Op:
    """Mirror left-right with probability `prob`."""
    return _flip("flip_lr", 1, prob)


@register_op("flip_ud")
def flip_ud(prob: float = 0.5) -> Op:
    """Mirror top-bottom with probability `prob`."""
    return _flip("flip_ud", 0, prob)


@register_op("translate")
def translate(max_fraction: float = 0.1) -> Op:
    """Shift by up to `max_fraction` of the height and width (uniform, sub-pixel, zero fill)."""
    f = number("translate", "max_fraction", max_fraction, 0, 1)
    def op(key: jax.Array, image: jax.Array) -> jax.Array:
        h, w, _ = image.shape
        shift = uniform(key, (-f, f), (2,)) * jnp.array([h, w], jnp.float32)
        return warp_about_centre(image, jnp.eye(2), shift)
    return op


@register_op("rotate")
def rotate(degrees: float | tuple[float, float] = 15) -> Op:
    """Rotate counter-clockwise by an angle uniform in [-degrees, degrees] (or a (low, high) range)."""
    bounds = symmetric("rotate", "degrees", degrees, 360)
    def op(key: jax.Array, image: jax.Array) -> jax.Array:
        return warp_about_centre(image, rotation(jnp.deg2rad(uniform(key, bounds))))
    return op


@register_op("shear")
def shear(degrees: float | tuple[float, float] = 10) -> Op:
    """Shear along the columns by an angle uniform in [-degrees, degrees] (Keras' shear_range, in degrees)."""
    bounds = symmetric("shear", "degrees", degrees, 89)
    def op(key: jax.Array, image: jax.Array) -> jax.Array:
        return warp_about_centre(image, shear_matrix(jnp.tan(jnp.deg2rad(uniform(key, bounds))), axis=1))
    return op


def _scaling(name: str, bounds: tuple[float, float], isotropic: bool) -> Op:
    lo, hi = interval(name, "range", bounds, 0, math.inf)
    require(lo > 0, f"{name}(range=...) takes factors > 0, got {bounds!r}")
    def op(key: jax.Array, image: jax.Array) -> jax.Array:
        factors = uniform(key, (lo, hi), (1,) if isotropic else (2,))
        return warp_about_centre(image, jnp.diag(jnp.broadcast_to(1 / factors, (2,))))
    return op


@register_op("zoom")
def zoom(range: tuple[float, float] = (0.9, 1.1)) -> Op:  # noqa: A002  (the spec's argument name)
    """Scale rows and columns by independent factors in `range` (> 1 enlarges), as Keras' zoom_range."""
    return _scaling("zoom", range, isotropic=False)


@register_op("random_scale")
def random_scale(range: tuple[float, float] = (0.9, 1.1)) -> Op:  # noqa: A002
    """Scale the image by one factor in `range` (> 1 enlarges), keeping its aspect ratio."""
    return _scaling("random_scale", range, isotropic=True)


ATTEMPTS = 10  # random-resized crop / random erasing: boxes drawn before falling back (as torchvision)


def box_uniforms(attempts: int = ATTEMPTS) -> int:
    """How many uniforms `random_box` reads (ops draw all theirs in one call: each threefry call costs compile time)."""
    return 2 * attempts + 2


def random_box(u: jax.Array, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
               attempts: int = ATTEMPTS) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """(top, left, h, w, found) of a box with area fraction in `scale` and aspect w/h log-uniform in `ratio`,
    from `box_uniforms()` uniforms `u` in [0, 1): the first of `attempts` draws that fits (all drawn at once:
    no data-dependent loop under jit)."""
    area = (scale[0] + (scale[1] - scale[0]) * u[:attempts]) * height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    aspect = jnp.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[attempts:2 * attempts])
    w = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
    h = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = jnp.argmax(fits)
    h, w = h[first], w[first]
    top = jnp.floor(u[-2] * (height - h + 1)).astype(jnp.int32)
    left = jnp.floor(u[-1] * (width - w + 1)).astype(jnp.int32)
    return top, left, h, w, fits.any()


@register_op("random_resized_crop")
def random_resized_crop(scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Op:
    """Inception's crop: a box of area fraction in `scale`, aspect in `ratio`, resized back to the input size
    (bilinear, no antialiasing); if no draw fits, the centre box with the aspect clamped into `ratio`."""
    scale = interval("random_resized_crop", "scale", scale, 0, 1)
    ratio = interval("random_resized_crop", "ratio", ratio, 0, math.inf)
    require(scale[1] > 0 and ratio[0] > 0, "random_resized_crop: scale and ratio must be positive, e.g. "
            "scale=(0.08, 1), ratio=(0.75, 1.33)")
    def op(key: jax.Array, image: jax.Array) -> jax.Array:
        height, width, _ = image.shape
        top, left, h, w, found = random_box(jax.random.uniform(key, (box_uniforms(),)), height, width, scale, ratio)
        aspect = min(max(width / height, ratio[0]), ratio[1])  # fallback, static
        fh, fw = min(height, round(width / aspect)), min(width, round(height * aspect))
        box = jnp.where(found, jnp.stack([top, left, h, w]),
                        jnp.array([(height - fh) // 2, (width - fw) // 2, fh, fw])).astype(jnp.float32)
        sy, sx = box[2] / height, box[3] / width  # output pixel centres map onto the box's
        offset = jnp.stack([box[0] + 0.5 * sy - 0.5, box[1] + 0.5 * sx - 0.5])
        return warp(image, jnp.diag(jnp.stack([sy, sx])), offset)
    return op
