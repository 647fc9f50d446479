"""Progressive resizing (fast.ai, FFCV): early epochs train on smaller images, the last ones at full size.

The spec gives a size per epoch; the batch maker resizes the (augmented) global batch on device to the size
of the step's epoch. A size is a static shape, so each distinct size is one more compilation of the train
step: the number of sizes is capped at `MAX_SIZES`. Validation and evaluation always run at the images' own
size, which must be the last size of the ramp.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from cnnjax.errors import CnnjaxError

MAX_SIZES = 8  # distinct sizes, i.e. compilations of the train step
USAGE = "write 'START:END' (e.g. '16:28', a linear ramp over the epochs) or 'EPOCH:SIZE,...' (e.g. '0:16,3:22,6:28')"


class ResizeSpecError(CnnjaxError, ValueError):
    """A progressive_resize spec that does not parse or cannot be run."""


def sizes_per_epoch(spec: str, num_epochs: int) -> tuple[int, ...]:
    """The training image size of every epoch (empty for an empty spec)."""
    if not spec.strip():
        return ()
    try:
        pairs = [tuple(int(x) for x in item.split(":")) for item in spec.split(",")]
    except ValueError:
        raise ResizeSpecError(f"progressive_resize={spec!r} does not parse: {USAGE}") from None
    if any(len(p) != 2 for p in pairs) or not pairs:
        raise ResizeSpecError(f"progressive_resize={spec!r} does not parse: {USAGE}")
    sizes = _ramp(*pairs[0], num_epochs) if len(pairs) == 1 else _steps(spec, pairs, num_epochs)
    if min(sizes) < 1:
        raise ResizeSpecError(f"progressive_resize={spec!r}: sizes must be positive")
    if len(set(sizes)) > MAX_SIZES:
        raise ResizeSpecError(f"progressive_resize={spec!r} has {len(set(sizes))} distinct sizes, each one compiled "
                              f"train step; use at most {MAX_SIZES}")
    return sizes


def _ramp(start: int, end: int, num_epochs: int) -> tuple[int, ...]:
    """START at epoch 0 to END at the last epoch in equal steps, at most MAX_SIZES distinct sizes."""
    quantum = max(1, math.ceil(abs(end - start) / (MAX_SIZES - 1)))
    levels = math.ceil(abs(end - start) / quantum)
    sign = 1 if end >= start else -1
    sizes = []
    for epoch in range(num_epochs):
        level = round(levels * epoch / max(1, num_epochs - 1))
        sizes.append(end if level == levels else start + sign * quantum * level)
    return tuple(sizes)


def _steps(spec: str, pairs: list[tuple[int, ...]], num_epochs: int) -> tuple[int, ...]:
    epochs = [e for e, _ in pairs]
    if epochs[0] != 0 or epochs != sorted(set(epochs)):
        raise ResizeSpecError(f"progressive_resize={spec!r}: the epochs must start at 0 and increase")
    return tuple(next(size for e, size in reversed(pairs) if e <= epoch) for epoch in range(num_epochs))


def resize_batch(images: jax.Array, size: int) -> jax.Array:
    """(B, H, W, C) uint8 -> (B, size, size, C) uint8, bilinear with antialiasing when shrinking."""
    if images.shape[1:3] == (size, size):
        return images
    out = jax.image.resize(images.astype(jnp.float32), (images.shape[0], size, size, images.shape[3]),
                           method="bilinear", antialias=True)
    return jnp.clip(jnp.round(out), 0, 255).astype(images.dtype)
