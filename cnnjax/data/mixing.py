"""Batch-level Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019): the global batch of a step is mixed
with itself rolled by one, and its integer labels become soft (B, K) float32 targets.

Each method reads its OWN alpha (torchvision's CutMix once read the mixup alpha, vision#8440): lambda ~
Beta(alpha, alpha) for the batch. Mixup blends whole images, x' = lam * x + (1 - lam) * x[roll]; CutMix pastes
one box of x[roll] of area about (1 - lam) of the image and sets lam to the exact unpasted fraction, as timm
does. With both on, CutMix is chosen with probability `switch_prob` (timm's convention); any mixing at all
happens with probability `prob` (an unmixed batch gets lam = 1: one-hot targets, the images untouched).

Mixing runs inside the jitted batch maker on the whole global batch (after normalisation, which is affine per
channel, so mixing before or after it is the same) with a key of (seed, step): 1 device and N devices see the
same mixed batch. Rolling by one never pairs an example with itself, and the batch is already shuffled.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections

MIX_STREAM = 3  # beside pipeline.SHUFFLE_STREAM, AUGMENT_STREAM


@dataclasses.dataclass(frozen=True)
class Mixer:
    """The mixing settings of a run; `__call__` mixes the global batch of a step."""

    num_classes: int
    seed: int = 0
    mixup_alpha: float = 0.0  # 0 = off
    cutmix_alpha: float = 0.0  # 0 = off
    prob: float = 1.0  # probability that a batch is mixed at all
    switch_prob: float = 0.5  # both on: probability of CutMix (else Mixup)

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict, num_classes: int) -> "Mixer | None":
        """The run's mixer, or None when mixing is off (configs older than these keys read as off)."""
        mixup, cutmix = float(config.get("mixup_alpha", 0.0)), float(config.get("cutmix_alpha", 0.0))
        if not (mixup or cutmix):
            return None
        return cls(num_classes, config.seed, mixup, cutmix, float(config.get("mix_prob", 1.0)),
                   float(config.get("mix_switch_prob", 0.5)))

    def __call__(self, images: jax.Array, labels: jax.Array, step: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(float images (B, H, W, C), int labels (B,)) of global step `step` -> (mixed images, (B, K) targets)."""
        key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(self.seed), MIX_STREAM), step)
        return self.mix(key, images, labels)

    def mix(self, key: jax.Array, images: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Mixes a batch with the randomness of `key`; see the module docstring.

        Written without Python branches on the settings, so they may also be traced values (one compiled
        program for many settings, as the tests use it).
        """
        k_apply, k_switch, k_lambda, k_box = jax.random.split(key, 4)
        h, w = images.shape[1:3]
        partner = jnp.roll(images, 1, axis=0)
        mixup_on, cutmix_on = jnp.asarray(self.mixup_alpha) > 0, jnp.asarray(self.cutmix_alpha) > 0
        # both on: CutMix with probability switch_prob; one on: that one
        use_cutmix = cutmix_on & (~mixup_on | (jax.random.uniform(k_switch) < self.switch_prob))
        # One draw of two independent lambdas, each from its own alpha (one sampling loop to compile, not two).
        mixup_lam, cutmix_lam = beta(k_lambda, jnp.stack([jnp.asarray(self.mixup_alpha, jnp.float32),
                                                          jnp.asarray(self.cutmix_alpha, jnp.float32)]))
        box = cutmix_box(k_box, cutmix_lam, h, w)
        apply = (mixup_on | cutmix_on) & (jax.random.uniform(k_apply) < self.prob)
        lam = jnp.where(use_cutmix, 1.0 - box.mean(), mixup_lam)
        lam = jnp.where(apply, lam, 1.0).astype(jnp.float32)
        mixed = jnp.where(use_cutmix, cutmix(images, partner, box), mixup(images, partner, lam))
        return jnp.where(apply, mixed, images), mix_targets(labels, jnp.roll(labels, 1), lam, self.num_classes)


def beta(key: jax.Array, alpha: float | jax.Array) -> jax.Array:
    """lambda ~ Beta(alpha, alpha) as float32, elementwise and independent for an array of alphas; alpha = 0
    (off) gives 1 (no mixing)."""
    on = jnp.asarray(alpha) > 0
    sample = jax.random.beta(key, jnp.where(on, alpha, 1.0), jnp.where(on, alpha, 1.0), dtype=jnp.float32)
    return jnp.where(on, sample, 1.0)


def mixup(images: jax.Array, partner: jax.Array, lam: jax.Array) -> jax.Array:
    """lam * images + (1 - lam) * partner (one lam for the batch)."""
    lam = lam.astype(images.dtype)
    return lam * images + (1 - lam) * partner


def cutmix_box(key: jax.Array, lam: jax.Array, h: int, w: int) -> jax.Array:
    """(H, W) float32 mask, 1 inside one box of about (1 - lam) * H * W pixels (clipped at the borders).

    The box's side is sqrt(1 - lam) of each image side and its centre is uniform over the image (Yun et al.),
    so a box near a border is clipped smaller; the caller takes lam from the mask's actual area.
    """
    cut = jnp.sqrt(1.0 - lam)
    cut_h, cut_w = jnp.floor(h * cut).astype(jnp.int32), jnp.floor(w * cut).astype(jnp.int32)
    cy, cx = jax.random.randint(key, (2,), 0, jnp.array([h, w]), dtype=jnp.int32)
    y0, y1 = jnp.clip(cy - cut_h // 2, 0, h), jnp.clip(cy + cut_h - cut_h // 2, 0, h)
    x0, x1 = jnp.clip(cx - cut_w // 2, 0, w), jnp.clip(cx + cut_w - cut_w // 2, 0, w)
    ys, xs = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
    return ((ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)).astype(jnp.float32)


def cutmix(images: jax.Array, partner: jax.Array, box: jax.Array) -> jax.Array:
    """`partner`'s pixels inside `box` (H, W), `images`' elsewhere."""
    return jnp.where(box[None, :, :, None] > 0, partner, images)


def mix_targets(labels: jax.Array, partner_labels: jax.Array, lam: jax.Array, num_classes: int) -> jax.Array:
    """(B, K) float32 rows lam * one_hot(labels) + (1 - lam) * one_hot(partner_labels); each sums to 1."""
    lam = lam.astype(jnp.float32)
    return (lam * jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
            + (1 - lam) * jax.nn.one_hot(partner_labels, num_classes, dtype=jnp.float32))


def mix_if(mixer: Mixer | None, images: jax.Array, labels: jax.Array,
           step: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The batch makers' last stage: mixed (images, soft targets), or the batch unchanged when mixing is off."""
    return (images, labels) if mixer is None else mixer(images, labels, step)
