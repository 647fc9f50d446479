"""Class imbalance (seed 004, "Miscellaneous"): making a training split imbalanced, balancing it per epoch,
and the class weights of a weighted loss.

- `carve_class_counts` keeps at most `class_counts[c]` examples of class c (seeded): an imbalanced dataset for
  experiments. `keep_classes` keeps only some classes (`train_classes`): stage 1 of seed 004's two-stage
  fine-tuning, which trains on the classes with many examples first and then continues on all of them.
- `EpochSampler` replaces the epoch's plain permutation (`TrainBatches.order`) by a class-balanced one, a pure
  function of the epoch's key, so resumed runs stay bit-identical and steps_per_epoch is fixed:
  * "oversample": as many draws as examples, with replacement, each example with probability
    1 / (K * n_class): every class is drawn N / K times in expectation.
  * "undersample": K * min(n_c) examples, the same number of every class, a fresh subset every epoch.
  * "minority_crops": K * max(n_c) examples: every example once, and the smaller classes' examples again (in a
    fresh order each epoch) until every class has max(n_c). Each copy sits at its own position of the epoch, so
    the augmentation (`augment`) gives it its own key: the extra copies are extra random crops/flips of the
    minority classes, the "crops from the classes with few images" of seed 004.
- `class_weights` resolves the `class_weights` key ("balanced" = n / (K * n_c), scikit-learn's definition).
"""

from __future__ import annotations

import ast
import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnjax.data.types import Split, uses_stream
from cnnjax.errors import CnnjaxError

CLASS_BALANCE = ("none", "oversample", "undersample", "minority_crops")
IMBALANCE_STREAM = 0x1B4C  # mixed into validation_seed so the carve draws numbers unrelated to the validation carve


class BalanceError(CnnjaxError, ValueError):
    """A class_counts / train_classes / class_weights / class_balance value that cannot be used as given."""


def carve_class_counts(train: Split, counts: tuple[int, ...], seed: int) -> Split:
    """At most `counts[c]` examples of each class c (a seeded random choice among them), in the split's order."""
    present = np.bincount(train.labels, minlength=len(counts))
    if len(present) > len(counts):
        raise BalanceError(f"class_counts has {len(counts)} entries but the labels go up to {len(present) - 1}; "
                           f"give one count per class ({len(present)})")
    too_many = [c for c, (want, have) in enumerate(zip(counts, present)) if want > have]
    if too_many:
        c = too_many[0]
        raise BalanceError(f"class_counts[{c}]={counts[c]} exceeds the {present[c]} training examples of class {c}; "
                           f"use at most that")
    rng = np.random.default_rng([IMBALANCE_STREAM, seed])
    keep = [rng.permutation(np.flatnonzero(train.labels == c))[:n] for c, n in enumerate(counts)]
    return train.take(np.sort(np.concatenate(keep)))


def keep_classes(train: Split, classes: tuple[int, ...]) -> Split:
    """The examples of `classes` only (order kept)."""
    missing = sorted(set(classes) - set(np.unique(train.labels).tolist()))
    if missing:
        raise BalanceError(f"train_classes lists {missing}, which have no training examples; "
                           f"the labels present are {sorted(set(train.labels.tolist()))}")
    return train.take(np.flatnonzero(np.isin(train.labels, classes)))


def parse_class_weights(spec: str) -> str | tuple[float, ...] | None:
    """"" -> None, "balanced" -> "balanced", "1,1,5" or "(1, 1, 5)" -> (1.0, 1.0, 5.0); else BalanceError."""
    spec = spec.strip()
    if spec in ("", "balanced"):
        return spec or None
    usage = "write 'balanced' or one weight per class, e.g. '1,1,1,5,5'"
    try:
        value = ast.literal_eval(spec)
    except (ValueError, SyntaxError):
        raise BalanceError(f"class_weights={spec!r} does not parse: {usage}") from None
    values = value if isinstance(value, (tuple, list)) else (value,)
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise BalanceError(f"class_weights={spec!r} is not a list of numbers: {usage}")
    weights = tuple(float(v) for v in values)
    if not all(np.isfinite(w) and w >= 0 for w in weights) or not sum(weights) > 0:
        raise BalanceError(f"class_weights={spec!r} needs finite weights >= 0, not all zero")
    return weights


def class_weights(spec: str, labels: np.ndarray, num_classes: int) -> tuple[float, ...]:
    """The per-class loss weights of `spec` ((): unweighted). "balanced" gives class c n / (K * n_c) over the K
    classes present (0 to absent ones), so the weights average 1 over the training examples and the loss keeps
    its scale (and the learning rate its meaning)."""
    parsed = parse_class_weights(spec)
    if parsed is None:
        return ()
    if parsed == "balanced":
        counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
        present = counts > 0
        weights = np.where(present, len(labels) / (present.sum() * np.maximum(counts, 1)), 0.0)
        return tuple(weights.tolist())
    if len(parsed) != num_classes:
        raise BalanceError(f"class_weights has {len(parsed)} weights for {num_classes} classes; give one per class")
    return parsed


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: hashed by identity (it holds arrays)
class EpochSampler:
    """Which training examples (indices into the split) an epoch visits, in order, for a `class_balance` mode."""

    mode: str
    labels: np.ndarray  # (N,) the training split's labels

    def __post_init__(self) -> None:
        if self.mode not in CLASS_BALANCE[1:]:
            raise BalanceError(f"class_balance must be one of {', '.join(CLASS_BALANCE)}, got {self.mode!r}")

    @property
    def counts(self) -> np.ndarray:
        """Examples of each class present (classes without examples are left out)."""
        counts = np.bincount(self.labels)
        return counts[counts > 0]

    @property
    def per_class(self) -> int:
        """Examples of each class in an epoch (undersample, minority_crops)."""
        return int(self.counts.min() if self.mode == "undersample" else self.counts.max())

    @property
    def epoch_size(self) -> int:
        if self.mode == "oversample":
            return len(self.labels)
        return len(self.counts) * self.per_class

    def order(self, key: jax.Array) -> jax.Array:
        """The epoch's example indices (int32, length `epoch_size`); `key` is the epoch's shuffle key."""
        draw, shuffle = jax.random.split(key)
        if self.mode == "oversample":
            counts = np.bincount(self.labels)
            p = 1.0 / (len(self.counts) * counts[self.labels])
            picked = jax.random.choice(draw, len(self.labels), (len(self.labels),), replace=True, p=jnp.asarray(p))
            return picked.astype(jnp.int32)
        # Group the examples by class, each class in a random order; class c's m-th slot of the epoch takes the
        # example of rank m mod n_c, so undersampling takes a random subset and replication cycles the class.
        labels = jnp.asarray(self.labels, jnp.int32)
        _, _, grouped = jax.lax.sort((labels, jax.random.uniform(draw, labels.shape),
                                      jnp.arange(len(self.labels), dtype=jnp.int32)), num_keys=2)
        starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        slots = np.concatenate([start + np.arange(self.per_class) % n for start, n in zip(starts, self.counts)])
        return jax.random.permutation(shuffle, grouped[jnp.asarray(slots, jnp.int32)])


def epoch_sampler(mode: str, labels: np.ndarray) -> EpochSampler | None:
    """The sampler of `class_balance=mode` (None for "none": the plain permutation)."""
    return None if mode == "none" else EpochSampler(mode, np.asarray(labels))


def check_config(config: ml_collections.ConfigDict) -> None:
    """config.validate's checks of class_counts, train_classes, class_balance, class_weights (configs older than
    them read them as off); it turns the BalanceError into a ConfigError."""
    for key, least in (("class_counts", 1), ("train_classes", 0)):
        value = config.get(key, ())
        if not all(type(v) is int and v >= least for v in value):
            raise BalanceError(f"{key} must be a tuple of integers >= {least}, e.g. --config.{key}='(0, 1, 2)', "
                              f"got {value!r}")
    if len(set(config.get("train_classes", ()))) != len(config.get("train_classes", ())):
        raise BalanceError(f"train_classes lists a class twice: {config.train_classes!r}")
    balance, weights = config.get("class_balance", "none"), config.get("class_weights", "")
    if balance not in CLASS_BALANCE:
        raise BalanceError(f"class_balance must be one of {', '.join(CLASS_BALANCE)}, got {balance!r}")
    if balance == "minority_crops" and not config.augment.strip():
        raise BalanceError("class_balance='minority_crops' adds augmented copies of the smaller classes: set "
                          "--config.augment (e.g. 'random_crop(padding=2)|flip_lr'), or use 'oversample'")
    parsed = parse_class_weights(weights)
    if parsed is not None and balance != "none":
        raise BalanceError(f"class_weights={weights!r} and class_balance={balance!r} both correct the imbalance "
                          "(together they over-correct it); set one of them to ''/'none'")
    if uses_stream(config):
        if config.get("class_counts", ()) or config.get("train_classes", ()) or balance != "none" \
                or parsed == "balanced":
            raise BalanceError("class_counts, train_classes, class_balance and class_weights='balanced' read the "
                              "training labels: use --config.input_pipeline=memory (or explicit class_weights)")
