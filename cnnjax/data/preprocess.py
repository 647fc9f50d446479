"""Input preprocessing (seed 004 §2): statistics of the training split and the one transform that uses them.

`compute(kind, train_images)` derives a `Statistics` once (float64, on the host); `apply(stats, images)` is the
only copy of the formula, run on device by the training batch maker, by evaluation and by the ensemble's
member inference, so every path feeds a model exactly what it was trained on. Every kind is

    x = uint8 / 255;  x = (x - shift) / scale;  x = flatten(x) @ matrix  (whitening kinds only)

in [0, 1] pixel units:

- standardize: per-channel mean and std (the default; bit-identical to the former `normalize`),
- center: per-channel mean only,
- pixel_mean: the per-pixel mean image (AlexNet),
- minmax: per-channel [min, max] of the training split -> [-1, 1] (the seed's "min and max along the
  dimension"; the data's range, not uint8's 0..255, so a dataset that never reaches 0 or 255 still spans
  [-1, 1]; unseen test pixels may fall slightly outside),
- pca_whiten: centre on the mean image, rotate into the covariance eigenbasis U, divide by sqrt(S + 1e-5);
  the output keeps the image's shape but its values are the D principal components, strongest first,
- zca: pca_whiten rotated back with U^T (the whitening closest to the input, so images still look like images).

Whitening needs the D x D covariance of the flattened image (D = H*W*C), so it is refused above
`MAX_WHITEN_DIM`. `cached` keeps statistics on disk keyed by a digest of the training examples, and never
trusts a file that does not match its key or its own checksum: it recomputes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pathlib
import time

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.errors import CnnjaxError

log = logging.getLogger("cnnjax")
KINDS = ("standardize", "center", "pixel_mean", "minmax", "pca_whiten", "zca")
WHITENING = ("pca_whiten", "zca")
EPSILON = 1e-5  # seed 004: X_white = X_rot / sqrt(S + 1e-5), S the covariance eigenvalues in [0, 1] units
# Largest flattened image whitened: a 64x64 RGB image's covariance is 12288^2 float64 = 1.2 GB and its
# eigendecomposition minutes of CPU; 32x32x3 (CIFAR) = 3072 is 75 MB and seconds.
MAX_WHITEN_DIM = 4096
FORMAT_VERSION = 1
_CHUNK = 4096  # examples per covariance update (bounded float64 memory for a 60k-image split)


class PreprocessError(CnnjaxError, ValueError):
    """A preprocessing kind that does not exist, or cannot be computed for these images."""


@flax.struct.dataclass
class Statistics:
    """What `apply` needs; a pytree (arrays are leaves) so ensemble members' statistics stack like weights."""

    kind: str = flax.struct.field(pytree_node=False)
    shift: np.ndarray  # subtracted in [0, 1] units: (C,) per channel or (H, W, C) per pixel
    scale: np.ndarray  # (C,) divisor after the shift
    matrix: np.ndarray | None = None  # (D, D) applied to the flattened shifted image (whitening kinds)


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise PreprocessError(f"unknown preprocess {kind!r}; choose one of {', '.join(KINDS)}")


def standardized(mean: tuple[float, ...], std: tuple[float, ...]) -> Statistics:
    """Per-channel statistics given as numbers (the streaming pipeline's, registry models', tests')."""
    return Statistics("standardize", np.asarray(mean, np.float64), np.asarray(std, np.float64))


def channel_moments(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images in [0, 1] units (float64)."""
    pixels = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    return tuple(pixels.mean(0).tolist()), tuple(pixels.std(0).tolist())


def apply(stats: Statistics, images: jax.Array, dtype=jnp.float32) -> jax.Array:
    """uint8 (B, H, W, C) -> the model's float input; the one copy of every kind's formula."""
    x = images.astype(jnp.float32) / 255.0
    x = (x - jnp.asarray(stats.shift, jnp.float32)) / jnp.asarray(stats.scale, jnp.float32)
    if stats.matrix is not None:
        flat = x.reshape(x.shape[0], -1)
        x = jnp.dot(flat, jnp.asarray(stats.matrix, jnp.float32), precision=jax.lax.Precision.HIGHEST).reshape(x.shape)
    return x.astype(dtype)


def compute(kind: str, images: np.ndarray, epsilon: float = EPSILON) -> Statistics:
    """The statistics of `kind` from the training split's uint8 images (N, H, W, C), in float64."""
    check_kind(kind)
    channels = images.shape[-1]
    ones = np.ones(channels, np.float64)
    if kind in ("standardize", "center"):
        mean, std = channel_moments(images)
        return Statistics(kind, np.asarray(mean), np.asarray(std) if kind == "standardize" else ones)
    if kind == "minmax":
        low = images.min(axis=(0, 1, 2)).astype(np.float64) / 255.0
        high = images.max(axis=(0, 1, 2)).astype(np.float64) / 255.0
        half = (high - low) / 2
        return Statistics(kind, (low + high) / 2, np.where(half > 0, half, 1.0))  # a constant channel -> 0
    if kind == "pixel_mean":
        return Statistics(kind, mean_image(images), ones)
    mean, eigenvalues, eigenvectors = eigen(images)
    matrix = eigenvectors / np.sqrt(eigenvalues + epsilon)  # U diag(1 / sqrt(S + eps)): columns scaled
    if kind == "zca":
        matrix = matrix @ eigenvectors.T
    return Statistics(kind, mean, ones, matrix)


def mean_image(images: np.ndarray) -> np.ndarray:
    """(H, W, C) per-pixel mean in [0, 1] units (float64)."""
    return images.mean(0, dtype=np.float64) / 255.0


def eigen(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean image, eigenvalues S descending, eigenvectors U as columns) of the flattened images' covariance
    (X^T X / N of the centred data, as seed 004 computes it), float64."""
    dim = int(np.prod(images.shape[1:]))
    if dim > MAX_WHITEN_DIM:
        raise PreprocessError(
            f"whitening {images.shape[1]}x{images.shape[2]}x{images.shape[3]} images needs a {dim}x{dim} covariance "
            f"(over {MAX_WHITEN_DIM}x{MAX_WHITEN_DIM}: too big to decompose); use --config.preprocess=standardize "
            "or pixel_mean")
    mean = mean_image(images)
    flat_mean = mean.reshape(-1)
    cov = np.zeros((dim, dim), np.float64)
    for start in range(0, len(images), _CHUNK):
        x = images[start:start + _CHUNK].reshape(-1, dim).astype(np.float64) / 255.0 - flat_mean
        cov += x.T @ x
    eigenvalues, eigenvectors = np.linalg.eigh(cov / len(images))
    order = np.argsort(eigenvalues)[::-1]  # strongest component first, as the seed's SVD returns them
    return mean, np.clip(eigenvalues[order], 0.0, None), eigenvectors[:, order]


def digest(kind: str, images: np.ndarray, epsilon: float = EPSILON) -> str:
    """Key of the statistics: the kind, epsilon and the training examples' bytes (and shape)."""
    h = hashlib.sha256(f"{FORMAT_VERSION}:{kind}:{epsilon!r}:{images.shape}:{images.dtype}".encode())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()


def _arrays(stats: Statistics) -> dict[str, np.ndarray]:
    matrix = np.zeros((0, 0)) if stats.matrix is None else stats.matrix
    return {"shift": np.asarray(stats.shift, np.float64), "scale": np.asarray(stats.scale, np.float64),
            "matrix": np.asarray(matrix, np.float64)}


def _checksum(kind: str, key: str, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256(f"{FORMAT_VERSION}:{kind}:{key}".encode())
    for name in sorted(arrays):
        h.update(f"{name}{arrays[name].shape}".encode())
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


def save(path: pathlib.Path, stats: Statistics, key: str) -> None:
    """Writes `stats` (with its key and a checksum of its content) through a temporary name and a rename."""
    arrays = _arrays(stats)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            np.savez(f, kind=np.asarray(stats.kind), key=np.asarray(key),
                     checksum=np.asarray(_checksum(stats.kind, key, arrays)), **arrays)
        tmp.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def load(path: pathlib.Path, key: str | None = None) -> Statistics | None:
    """The statistics saved at `path` (with `key`, if given); None if missing, damaged (warned) or another key."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            kind, saved_key = str(saved["kind"]), str(saved["key"])
            arrays = {name: saved[name] for name in ("shift", "scale", "matrix")}
            checksum = str(saved["checksum"])
    except FileNotFoundError:
        return None
    except Exception as err:  # truncated, not an npz, missing fields: recomputed
        log.warning("ignoring the damaged preprocessing statistics %s (%s)", path, err)
        return None
    if kind not in KINDS or checksum != _checksum(kind, saved_key, arrays):
        log.warning("ignoring the damaged preprocessing statistics %s (its content does not match its checksum)", path)
        return None
    if key is not None and saved_key != key:
        return None
    matrix = arrays["matrix"] if arrays["matrix"].size else None
    return Statistics(kind, arrays["shift"], arrays["scale"], matrix)


def cached(kind: str, images: np.ndarray, cache_dir: pathlib.Path | None) -> Statistics:
    """`compute(kind, images)`, read from `cache_dir` when computed before for these very examples.

    An unwritable cache directory only costs the cache (a warning), not the run.
    """
    check_kind(kind)
    key = digest(kind, images)
    path = None if cache_dir is None else pathlib.Path(cache_dir) / f"{kind}-{key[:24]}.npz"
    if path is not None and (found := load(path, key)) is not None:
        return found
    start = time.perf_counter()
    stats = compute(kind, images)
    log.info("computed %s statistics of %d training examples in %.1f s", kind, len(images), time.perf_counter() - start)
    if path is not None:
        try:
            save(path, stats, key)
        except OSError as err:
            log.warning("%s statistics not cached in %s (%s); they will be computed again next time", kind,
                        path.parent, err.strerror or err)
    return stats
