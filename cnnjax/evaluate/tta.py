"""Test-time augmentation (`eval.py --tta`): the model scores several views of each image and the evaluation
averages their class probabilities.

- "flip": the image and its left-right mirror;
- "crops": the 4 corners and the centre of the image zero-padded by `crop_padding` pixels on each side, each
  crop of the original size (the centre crop is the image itself) — the shifts `random_crop(padding=...)`
  trains with, for small images;
- "flip_crops": the 5 crops and their mirrors (10 views).

It is a transform of the predict function (uint8 images -> logits), so the exact pad + mask evaluation is kept
and every example is still scored once. The averaged "logits" it returns are log(mean_v softmax(logits_v)):
softmax of them is the mean probability, so top-1, NLL, the confusion matrix and ensembles of them read the
averaged prediction. Streamed runs have their own 10-crop evaluation (`stream.ten_crop`).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from cnnjax.errors import CnnjaxError

TTA_MODES = ("none", "flip", "crops", "flip_crops")
LogitsFn = Callable[[Any, jax.Array], jax.Array]


class TtaError(CnnjaxError, ValueError):
    """An unknown --tta mode, or test-time augmentation where it does not apply."""


def check_mode(mode: str) -> str:
    if mode not in TTA_MODES:
        raise TtaError(f"unknown test-time augmentation {mode!r}; choose one of {', '.join(TTA_MODES)}")
    return mode


def crop_padding(height: int, width: int) -> int:
    """Pixels of zero padding the crops shift by: 1/8 of the shorter side (4 for 32x32, 3 for 28x28)."""
    return max(1, min(height, width) // 8)


def five_crops(images: jax.Array) -> list[jax.Array]:
    """The 4 corner crops and the centre crop of a (B, H, W, C) batch zero-padded by `crop_padding`."""
    _, h, w, _ = images.shape
    p = crop_padding(h, w)
    padded = jnp.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
    return [padded[:, y:y + h, x:x + w] for y, x in ((0, 0), (0, 2 * p), (2 * p, 0), (2 * p, 2 * p), (p, p))]


def views(images: jax.Array, mode: str) -> list[jax.Array]:
    """The batches the model scores for `mode` (the first is the image itself for "flip")."""
    base = five_crops(images) if "crops" in check_mode(mode) else [images]
    return base + [v[:, :, ::-1] for v in base] if "flip" in mode else base


def averaged(logits_of_images: LogitsFn, mode: str) -> LogitsFn:
    """`logits_of_images(variables, images)` scoring `mode`'s views: log of the mean of their probabilities.
    "none" returns `logits_of_images` itself (the evaluation without TTA is unchanged)."""
    if check_mode(mode) == "none":
        return logits_of_images

    def logits_of(variables: Any, images: jax.Array) -> jax.Array:
        log_probs = [jax.nn.log_softmax(logits_of_images(variables, v), -1) for v in views(images, mode)]
        return jax.nn.logsumexp(jnp.stack(log_probs), axis=0) - jnp.log(float(len(log_probs)))

    return logits_of
