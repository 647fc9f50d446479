"""Train / validation / test: validation is carved from train, test is only ever used for reporting."""

from __future__ import annotations

import dataclasses

import numpy as np

from cnnjax.data.sources import DatasetMeta, Split, dataset_meta, load_split
from cnnjax.errors import CnnjaxError


class SplitError(CnnjaxError, ValueError):
    """A split that does not exist, or sizes (validation_size, num_train_examples) the data cannot give."""


@dataclasses.dataclass(frozen=True)
class Datasets:
    meta: DatasetMeta
    train: Split
    validation: Split | None
    test: Split | None  # None when loaded without it (`with_test=False`)
    mean: tuple[float, ...]  # per-channel statistics of the training split, in [0, 1] units
    std: tuple[float, ...]

    def split(self, name: str) -> Split:
        found = {"train": self.train, "validation": self.validation, "test": self.test}.get(name)
        if found is None:
            raise SplitError(f"no {name!r} split in this run (choose train, validation or test; validation "
                             "needs a run trained with validation_size > 0)")
        return found


def carve_validation(train: Split, size: int, seed: int, limit: int = 0) -> tuple[Split, Split | None]:
    """Holds out `size` random training examples (fixed by `seed`); `limit` caps what is left to train on."""
    if size >= len(train):
        raise SplitError(f"validation_size={size} leaves nothing of the {len(train)} training examples; "
                         f"use fewer than {len(train)}")
    if limit > len(train) - size:
        raise SplitError(f"num_train_examples={limit} exceeds the {len(train) - size} training examples left "
                         f"after validation_size={size}; use at most that, or 0 for all")
    order = np.random.default_rng(seed).permutation(len(train))
    held_out, rest = np.sort(order[:size]), order[size:]
    if limit:
        rest = rest[:limit]
    return train.take(np.sort(rest)), (train.take(held_out) if size else None)


def channel_stats(split: Split) -> tuple[tuple[float, ...], tuple[float, ...]]:
    pixels = split.images.reshape(-1, split.images.shape[-1]).astype(np.float64) / 255.0
    return tuple(pixels.mean(0).tolist()), tuple(pixels.std(0).tolist())


def load_datasets(name: str, data_dir: str = "", validation_size: int = 5000, validation_seed: int = 0,
                  num_train_examples: int = 0, with_test: bool = True) -> Datasets:
    """The run's splits and the training statistics; `with_test=False` skips reading test (evaluation of
    train or validation needs only train, whose statistics normalise every split)."""
    meta = dataset_meta(name, data_dir)
    train, validation = carve_validation(load_split(name, "train", data_dir), validation_size, validation_seed,
                                         num_train_examples)
    mean, std = channel_stats(train)
    return Datasets(meta, train, validation, load_split(name, "test", data_dir) if with_test else None, mean, std)
