"""Colour ops: Keras' channel shift, seed 004's HSV jitter and AlexNet's fancy-PCA lighting noise.

Pixels are float32 in [0, 255] units (see the registry's doc). HSV jitter works on the [0, 1] RGB cube, so
it clips its input into the cube first (HSV is undefined outside it).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.data.augment.registry import AugmentContext, AugmentSpecError, Op, interval, number, parse_calls, \
    register_op, require

# fb.resnet.torch's ImageNet lighting (datasets/imagenet.lua): standard deviations along the principal
# components of the RGB covariance for pixels in [0, 1] (they scale linearly with the pixel units: 0.2175 is
# the 55.46 of [0, 255] implementations), and the components (columns).
IMAGENET_PCA_STD = (0.2175, 0.0188, 0.0045)
IMAGENET_PCA_VECS = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))
PCA_CHUNK = 4096  # images per float64 chunk of the covariance sums


def rgb_pca(images: np.ndarray) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]:
    """(eigenvalues descending, eigenvectors as columns) of the RGB covariance of every pixel of `images`
    (N, H, W, 3), in the units of the images (uint8: [0, 255]).

    Exact, not sampled: float64 sums of x and x x^T over chunks cost one pass (about a second for CIFAR's
    51M pixels) in bounded memory, so there is no sample size to choose or seed to record.
    """
    require(images.ndim == 4 and images.shape[-1] == 3,
            f"fancy_pca needs RGB images (N, H, W, 3), got shape {tuple(images.shape)}")
    total, outer, count = np.zeros(3), np.zeros((3, 3)), 0
    for start in range(0, len(images), PCA_CHUNK):
        x = np.asarray(images[start:start + PCA_CHUNK], np.float64).reshape(-1, 3)
        total += x.sum(0)
        outer += x.T @ x
        count += len(x)
    mean = total / count
    eigvals, eigvecs = np.linalg.eigh(outer / count - np.outer(mean, mean))
    order = np.argsort(eigvals)[::-1]
    eigvals, eigvecs = np.maximum(eigvals[order], 0.0), eigvecs[:, order]
    return tuple(eigvals.tolist()), tuple(tuple(row) for row in eigvecs.tolist())


def imagenet_pca() -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]:
    """fb.resnet.torch's ImageNet PCA as (eigenvalues, eigenvectors) in [0, 255] units."""
    return tuple((255.0 * s) ** 2 for s in IMAGENET_PCA_STD), IMAGENET_PCA_VECS


def _require_rgb(name: str, image: jax.Array) -> None:
    require(image.shape[-1] == 3, f"{name} needs RGB images, these have {image.shape[-1]} channel(s): "
            f"remove {name} from augment")


@register_op("channel_shift")
def channel_shift(max_delta: float = 20.0, per_channel: bool = False) -> Op:
    """Add a value uniform in [-max_delta, max_delta] (pixel units) to every channel, clipped to the image's
    own min/max, as Keras' channel_shift_range; per_channel=True draws one value per channel."""
    d = number("channel_shift", "max_delta", max_delta, 0, 255)
    require(isinstance(per_channel, bool), f"channel_shift(per_channel=...) takes True or False, got {per_channel!r}")
    def op(key: jax.Array, image: jax.Array) -> jax.Array:
        delta = jax.random.uniform(key, (image.shape[-1] if per_channel else 1,), jnp.float32, -d, d)
        return jnp.clip(image + delta, image.min(), image.max())
    return op


def rgb_to_hsv(rgb: jax.Array) -> jax.Array:
    """[0, 1] RGB -> HSV with H in [0, 1) (matplotlib's/colorsys' convention), last axis."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v, low = rgb.max(-1), rgb.min(-1)
    delta = v - low
    safe = jnp.where(delta > 0, delta, 1.0)
    s = jnp.where(v > 0, delta / jnp.where(v > 0, v, 1.0), 0.0)
    h = jnp.where(v == r, (g - b) / safe, jnp.where(v == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h = jnp.where(delta > 0, (h / 6.0) % 1.0, 0.0)
    return jnp.stack([h, s, v], -1)


def hsv_to_rgb(hsv: jax.Array) -> jax.Array:
    """Inverse of `rgb_to_hsv`."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    sector = jnp.floor(h * 6.0)
    f = h * 6.0 - sector
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = jnp.stack([jnp.stack(c, -1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v),
                                                     (v, p, q))])
    index = (sector.astype(jnp.int32) % 6)[None, ..., None]
    return jnp.take_along_axis(choices, index, 0)[0]


@register_op("hsv_jitter")
def hsv_jitter(power: tuple[float, float] = (0.25, 4.0), factor: tuple[float, float] = (0.7, 1.4),
               shift: tuple[float, float] = (-0.1, 0.1), hue_shift: tuple[float, float] = (-0.1, 0.1)) -> Op:
    """Seed 004's colour jitter: S and V (each its own draw) raised to a power in `power` (log-uniform, so
    brightening and darkening are equally likely), multiplied by a factor in `factor`, plus a value in
    `shift`; H plus a value in `hue_shift` (wrapping). HSV on the [0, 1] cube, clipped back into it."""
    power = interval("hsv_jitter", "power", power, 0, math.inf)
    require(power[0] > 0, f"hsv_jitter(power=...) takes powers > 0, got {power!r}")
    factor = interval("hsv_jitter", "factor", factor, 0, math.inf)
    shift = interval("hsv_jitter", "shift", shift, -1, 1)
    hue_shift = interval("hsv_jitter", "hue_shift", hue_shift, -1, 1)
    log_power = (math.log(power[0]), math.log(power[1]))
    def op(key: jax.Array, image: jax.Array) -> jax.Array:
        _require_rgb("hsv_jitter", image)
        u = jax.random.uniform(key, (7,))  # one draw: each threefry call costs compile time
        exponent = jnp.exp(log_power[0] + (log_power[1] - log_power[0]) * u[0:2])
        scale = factor[0] + (factor[1] - factor[0]) * u[2:4]
        add = shift[0] + (shift[1] - shift[0]) * u[4:6]
        hsv = rgb_to_hsv(jnp.clip(image / 255.0, 0.0, 1.0))
        sv = jnp.clip(hsv[..., 1:] ** exponent * scale + add, 0.0, 1.0)
        hue = (hsv[..., :1] + hue_shift[0] + (hue_shift[1] - hue_shift[0]) * u[6]) % 1.0
        return hsv_to_rgb(jnp.concatenate([hue, sv], -1)) * 255.0
    return op


@register_op("fancy_pca")
def fancy_pca(std: float = 0.1, eig: str = "train", context: AugmentContext | None = None) -> Op:
    """AlexNet's lighting noise: add sum_i alpha_i sqrt(lambda_i) p_i to every pixel, alpha_i ~ N(0, std) per
    image, (lambda_i, p_i) the eigenpairs of the RGB covariance of the training split (eig='train') or
    ImageNet's published ones (eig='imagenet'). sqrt(lambda_i), the standard deviation along p_i, keeps
    the shift in pixel units whatever they are, as the published values (fb.resnet.torch) are."""
    s = number("fancy_pca", "std", std, 0)
    require(eig in ("train", "imagenet"), f"fancy_pca(eig=...) takes 'train' or 'imagenet', got {eig!r}")
    if context is not None and context.channels is not None:
        require(context.channels == 3, f"fancy_pca needs RGB images, this dataset has {context.channels} "
                "channel(s): remove fancy_pca from augment")
    pca = imagenet_pca() if eig == "imagenet" else (
        (context.rgb_eigvals, context.rgb_eigvecs) if context is not None and context.rgb_eigvals else None)
    def op(key: jax.Array, image: jax.Array) -> jax.Array:
        _require_rgb("fancy_pca", image)
        if pca is None:
            raise AugmentSpecError("fancy_pca(eig='train') needs the training split's RGB PCA: parse the spec "
                                   "with augment.context_for(spec, train_images), or use eig='imagenet'")
        eigvals, eigvecs = jnp.asarray(pca[0], jnp.float32), jnp.asarray(pca[1], jnp.float32)
        alpha = s * jax.random.normal(key, (3,), jnp.float32)
        return image + eigvecs @ (alpha * jnp.sqrt(eigvals))
    return op


def needs_training_pca(spec: str) -> bool:
    """Whether the spec has fancy_pca with eig='train' (what `context_for` computes the PCA for)."""
    return any(name == "fancy_pca" and kwargs.get("eig", "train") == "train" for name, kwargs in parse_calls(spec))


def context_for(spec: str, train_images: np.ndarray | None, channels: int) -> AugmentContext:
    """The data the spec's ops need, from the training split: its RGB PCA only if fancy_pca(eig='train') is
    used (`train_images` None: the streaming pipeline, which has no pass over the training set)."""
    if not needs_training_pca(spec) or channels != 3:
        return AugmentContext(channels)  # a 1-channel fancy_pca fails in its factory with its own message
    require(train_images is not None, "fancy_pca(eig='train') needs the training images in memory; with "
            "input_pipeline=stream use fancy_pca(eig='imagenet')")
    return AugmentContext(channels, *rgb_pca(train_images))
