"""Train / validation / test: validation is carved from train, test is only ever used for reporting.

Class imbalance carves the training split too (`class_counts`, `train_classes`, see `balance.py`).

Ensemble members differ in what they train on: `load_for_config` also makes the k-fold carve
(`cv_folds`), the bootstrap resample (`bootstrap_seed`, bagging) and the weighted resample
(`train_sample_weights`, boosting). Resampling replaces only the examples trained on: validation, test
and the normalisation statistics (of the carved training examples) stay those of the un-resampled run, so
evaluation re-derives them without the resample (when a workdir has no stored statistics,
`train.run_statistics`) and every member of an ensemble shares its preprocessing.
"""

from __future__ import annotations

import dataclasses
import pathlib

import ml_collections
import numpy as np

from cnnjax.data.preprocess import channel_moments
from cnnjax.data.balance import carve_class_counts, keep_classes
from cnnjax.data.sources import DatasetMeta, Split, dataset_meta, load_split
from cnnjax.data.types import uses_stream
from cnnjax.errors import CnnjaxError

# Mixed into the resample seed so that bootstrap_seed=s and validation_seed=s draw unrelated numbers.
RESAMPLE_STREAM = 0x5A3B


class SplitError(CnnjaxError, ValueError):
    """A split that does not exist, or sizes (validation_size, num_train_examples) the data cannot give."""


@dataclasses.dataclass(frozen=True)
class Datasets:
    meta: DatasetMeta
    train: Split  # what is trained on (resampled when bagging / boosting)
    validation: Split | None
    test: Split | None  # None when loaded without it (`with_test=False`)
    mean: tuple[float, ...]  # per-channel statistics of the carved training split, in [0, 1] units
    std: tuple[float, ...]
    carved_train: Split | None = None  # the training examples before resampling; None: `train` is not resampled

    @property
    def train_unresampled(self) -> Split:
        """The carved training examples, in the order `train_sample_weights` indexes them."""
        return self.train if self.carved_train is None else self.carved_train

    def split(self, name: str) -> Split:
        found = {"train": self.train, "validation": self.validation, "test": self.test}.get(name)
        if found is None:
            raise SplitError(f"no {name!r} split in this run (choose train, validation or test; validation "
                             "needs a run trained with validation_size > 0 or cv_folds >= 2)")
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


def fold_of(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold (0..folds-1) of every example: stratified, so each class is spread evenly over the folds.

    Each class's examples are shuffled (by `seed`) and the classes laid end to end; position i goes to fold
    i % folds. So fold sizes, and each class's count in each fold, differ by at most one.
    """
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)])
    fold = np.empty(len(labels), np.int64)
    fold[order] = np.arange(len(labels)) % folds
    return fold


def carve_fold(train: Split, folds: int, fold: int, seed: int, limit: int = 0) -> tuple[Split, Split]:
    """Validation is fold `fold` of a stratified `folds`-fold split (fixed by `seed`); training is the rest,
    capped at `limit` random examples (also fixed by `seed`)."""
    if folds > len(train):
        raise SplitError(f"cv_folds={folds} exceeds the {len(train)} training examples; use fewer folds")
    in_fold = fold_of(train.labels, folds, seed) == fold
    rest = np.flatnonzero(~in_fold)
    if limit > len(rest):
        raise SplitError(f"num_train_examples={limit} exceeds the {len(rest)} training examples outside fold "
                         f"{fold} of cv_folds={folds}; use at most that, or 0 for all")
    if limit:
        rest = np.sort(np.random.default_rng([seed, folds]).permutation(rest)[:limit])
    return train.take(rest), train.take(np.flatnonzero(in_fold))


def channel_stats(split: Split) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return channel_moments(split.images)


def load_datasets(name: str, data_dir: str = "", validation_size: int = 5000, validation_seed: int = 0,
                  num_train_examples: int = 0, with_test: bool = True, cv_folds: int = 0,
                  cv_fold: int = 0, class_counts: tuple[int, ...] = (), train_classes: tuple[int, ...] = ()
                  ) -> Datasets:
    """The run's splits and the training statistics, without resampling; `with_test=False` skips reading
    test (evaluation of train or validation needs only train, whose statistics normalise every split).
    With `cv_folds` >= 2 validation is fold `cv_fold` (`validation_size` is ignored).

    `class_counts` then keeps at most that many training examples of each class (an imbalanced dataset: the
    statistics are its own); `train_classes` keeps only those classes' examples to train on, after the
    statistics, so both stages of a two-stage fine-tuning normalise alike. Validation and test are untouched."""
    meta = dataset_meta(name, data_dir)
    full = load_split(name, "train", data_dir)
    if cv_folds >= 2:
        train, validation = carve_fold(full, cv_folds, cv_fold, validation_seed, num_train_examples)
    else:
        train, validation = carve_validation(full, validation_size, validation_seed, num_train_examples)
    if class_counts:
        train = carve_class_counts(train, tuple(class_counts), validation_seed)
    mean, std = channel_stats(train)
    if train_classes:
        train = keep_classes(train, tuple(train_classes))
    return Datasets(meta, train, validation, load_split(name, "test", data_dir) if with_test else None, mean, std)


def load_for_config(config: ml_collections.ConfigDict, with_test: bool = True, resample: bool = True) -> Datasets:
    """The splits of a run, as training (`resample=True`) or evaluation (`resample=False`) uses them.

    Evaluation does not resample: it needs only validation/test and the statistics, which resampling does
    not change, and so never reads `train_sample_weights` (a booster may have rewritten or moved it).
    Configs of runs older than these keys read them as their defaults (off).
    """
    data = load_datasets(config.dataset, config.data_dir, config.validation_size, config.validation_seed,
                         config.num_train_examples, with_test, config.get("cv_folds", 0), config.get("cv_fold", 0),
                         config.get("class_counts", ()), config.get("train_classes", ()))
    data = restrict_classes(data, tuple(config.get("class_subset", ())), config.get("labels_per_class", 0),
                            config.validation_seed)
    seed, weights = resample_plan(config, len(data.train)) if resample else (None, None)
    if seed is None:
        return data
    return dataclasses.replace(data, train=data.train.take(resample_indices(len(data.train), seed, weights)),
                               carved_train=data.train)


def restrict_classes(data: Datasets, classes: tuple[int, ...], labels_per_class: int, seed: int) -> Datasets:
    """Only `classes` (relabelled 0..len-1 in the given order, in every split) and at most `labels_per_class`
    training examples of each (a random subset fixed by `seed`): transfer-learning and few-label runs.

    The normalisation statistics are those of the training examples kept. () and 0 leave `data` as it is.
    """
    if not classes and not labels_per_class:
        return data
    classes = classes or tuple(range(data.meta.num_classes))
    if max(classes) >= data.meta.num_classes:
        raise SplitError(f"class_subset={classes} names classes beyond {data.meta.name}'s "
                         f"{data.meta.num_classes} (0..{data.meta.num_classes - 1})")
    relabel = np.full(data.meta.num_classes, -1, np.int64)
    relabel[list(classes)] = np.arange(len(classes))

    def keep(split: Split | None, limit: int = 0) -> Split | None:
        if split is None:
            return None
        index = np.flatnonzero(relabel[split.labels] >= 0)
        if limit:
            rng = np.random.default_rng([RESAMPLE_STREAM, seed, limit])
            chosen = [rng.permutation(index[split.labels[index] == c])[:limit] for c in classes]
            short = [c for c, kept in zip(classes, chosen) if len(kept) < limit]
            if short:
                raise SplitError(f"labels_per_class={limit}: classes {short} have fewer training examples; "
                                 "lower labels_per_class")
            index = np.sort(np.concatenate(chosen))
        kept = split.take(index)
        return Split(kept.images, relabel[kept.labels].astype(split.labels.dtype))

    train = keep(data.train, labels_per_class)
    mean, std = channel_stats(train)
    return dataclasses.replace(data, meta=_restricted_meta(data.meta, classes), train=train,
                               validation=keep(data.validation), test=keep(data.test), mean=mean, std=std)


def check_class_keys(config: ml_collections.ConfigDict) -> None:
    """class_subset / labels_per_class as a config gives them (one-line `SplitError`); the dataset's class
    count is checked by `restrict_classes` when it is loaded."""
    classes = tuple(config.get("class_subset", ()))
    if classes and (len(classes) < 2 or len(set(classes)) != len(classes)
                    or not all(isinstance(c, int) and c >= 0 for c in classes)):
        raise SplitError(f"class_subset must be at least 2 distinct class indices >= 0, e.g. (5, 6, 7, 8, 9); "
                         f"got {classes}")
    if config.get("labels_per_class", 0) < 0:
        raise SplitError(f"labels_per_class must be >= 0 (0 = all), got {config.labels_per_class}")
    if (classes or config.get("labels_per_class", 0)) and uses_stream(config):
        raise SplitError("class_subset/labels_per_class need the in-memory pipeline and a real dataset: set "
                         "--config.input_pipeline=memory (the synthetic dataset has no classes to select)")


def meta_for_config(config: ml_collections.ConfigDict) -> DatasetMeta:
    """The dataset's metadata as a run of `config` sees it (num_classes of `class_subset`), no example read."""
    meta = dataset_meta(config.dataset, config.data_dir)
    classes = tuple(config.get("class_subset", ()))
    return _restricted_meta(meta, classes) if classes else meta


def _restricted_meta(meta: DatasetMeta, classes: tuple[int, ...]) -> DatasetMeta:
    names = tuple(meta.class_names[c] for c in classes) if len(meta.class_names) == meta.num_classes else ()
    return dataclasses.replace(meta, num_classes=len(classes), class_names=names)


def training_examples(config: ml_collections.ConfigDict) -> Split:
    """The carved training examples in order, un-resampled: what `train_sample_weights` gives one weight each
    (a booster scores a member on these and writes the next round's weights in this order)."""
    return load_for_config(config, with_test=False, resample=False).train


def resample_plan(config: ml_collections.ConfigDict, size: int) -> tuple[int | None, np.ndarray | None]:
    """(seed, weights) of the training resample, or (None, None) without one: `train_sample_weights` draws
    proportionally to its weights (seeded by `bootstrap_seed` if >= 0, else `seed`), `bootstrap_seed` >= 0
    alone uniformly."""
    bootstrap_seed, weights_path = config.get("bootstrap_seed", -1), config.get("train_sample_weights", "")
    if weights_path:
        return (bootstrap_seed if bootstrap_seed >= 0 else config.seed), load_sample_weights(weights_path, size)
    return (bootstrap_seed, None) if bootstrap_seed >= 0 else (None, None)


def resample_indices(size: int, seed: int, weights: np.ndarray | None = None) -> np.ndarray:
    """`size` indices drawn with replacement (uniformly, or proportionally to `weights`), sorted."""
    rng = np.random.default_rng([RESAMPLE_STREAM, seed])
    p = None if weights is None else weights / weights.sum()
    return np.sort(rng.choice(size, size=size, replace=True, p=p))


def load_sample_weights(path: str, size: int) -> np.ndarray:
    """The weights of a `.npy` file: `size` finite non-negative floats, not all zero (float64)."""
    where = f"train_sample_weights={path!r}"
    if not pathlib.Path(path).expanduser().is_file():
        raise SplitError(f"{where} is not a file: give a .npy with one weight per training example")
    try:
        weights = np.load(pathlib.Path(path).expanduser(), allow_pickle=False)
    except (OSError, ValueError) as err:
        raise SplitError(f"{where} is not a readable .npy array ({err}); write it with numpy.save") from None
    if weights.ndim != 1 or len(weights) != size or weights.dtype.kind not in "iuf":
        raise SplitError(f"{where} holds a {weights.dtype} array of shape {weights.shape}; it needs one number "
                         f"per training example, shape ({size},), in the order of splits.training_examples")
    weights = weights.astype(np.float64)
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise SplitError(f"{where} has {int((~np.isfinite(weights)).sum())} NaN/Inf and {int((weights < 0).sum())} "
                         "negative weights; weights must be finite and >= 0")
    if not weights.sum() > 0:
        raise SplitError(f"{where} weights are all zero; give at least one example a positive weight")
    return weights
