"""What ensemble members train on: bootstrap and weighted resamples, k-fold carves, on a synthetic dataset
(each example's image is its own index, so which examples a split holds can be read off its pixels)."""

from __future__ import annotations

import numpy as np
import pytest

from cnnjax.config import base_config
from cnnjax.data import splits
from cnnjax.data.sources import DatasetMeta, Split
from cnnjax.evaluate.run import load_split_for

N = 600


def _split(n: int, offset: int = 0) -> Split:
    ids = np.arange(offset, offset + n)
    images = np.stack([ids % 256, ids // 256], -1).astype(np.uint8).reshape(n, 1, 1, 2)
    return Split(images, (ids * 7 % 10).astype(np.int32))


def _ids(split: Split) -> np.ndarray:
    return split.images[:, 0, 0, 0].astype(int) + 256 * split.images[:, 0, 0, 1].astype(int)


@pytest.fixture(autouse=True)
def synthetic(monkeypatch):
    meta = DatasetMeta("synthetic", 10, tuple("0123456789"), (1, 1, 2), {"train": N, "test": 100})
    monkeypatch.setattr(splits, "dataset_meta", lambda name, data_dir="": meta)
    monkeypatch.setattr(splits, "load_split", lambda name, split, data_dir="":
                        _split(N) if split == "train" else _split(100, offset=N))


def _config(**kw):
    c = base_config()
    c.validation_size, c.num_train_examples = 100, 400
    for k, v in kw.items():
        c[k] = v
    return c


def test_bootstrap_is_a_same_size_resample_fixed_by_its_seed_leaving_the_rest_alone():
    plain = splits.load_for_config(_config())
    bagged = splits.load_for_config(_config(bootstrap_seed=3))
    assert len(bagged.train) == len(plain.train) == 400
    ids = _ids(bagged.train)
    assert set(ids) <= set(_ids(plain.train)) and len(set(ids)) < 400  # with replacement: some repeat
    assert np.array_equal(ids, _ids(splits.load_for_config(_config(bootstrap_seed=3)).train))
    assert not np.array_equal(ids, _ids(splits.load_for_config(_config(bootstrap_seed=4)).train))
    assert np.array_equal(_ids(bagged.validation), _ids(plain.validation))
    assert np.array_equal(_ids(bagged.test), _ids(plain.test))
    assert (bagged.mean, bagged.std) == (plain.mean, plain.std) != splits.channel_stats(bagged.train)
    assert np.array_equal(_ids(bagged.train_unresampled), _ids(plain.train))
    assert np.array_equal(_ids(splits.training_examples(_config(bootstrap_seed=3))), _ids(plain.train))


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_evaluation_reproduces_the_splits_and_statistics_without_the_resample(split, tmp_path):
    weights = tmp_path / "w.npy"
    np.save(weights, np.ones(400))
    for config in (_config(bootstrap_seed=1), _config(train_sample_weights=str(weights))):
        _, data, mean, std = load_split_for(config, split)
        plain = splits.load_for_config(_config())
        weights.unlink(missing_ok=True)  # evaluation never reads the weights
        assert np.array_equal(_ids(data), _ids(plain.split(split))) and (mean, std) == (plain.mean, plain.std)


def test_weighted_resample_draws_only_weighted_examples(tmp_path):
    carved = _ids(splits.training_examples(_config()))
    weights = np.zeros(400)
    weights[[5, 17]] = [1.0, 3.0]
    path = tmp_path / "w.npy"
    np.save(path, weights)
    data = splits.load_for_config(_config(train_sample_weights=str(path)))
    ids = _ids(data.train)
    assert len(ids) == 400 and set(ids) == {carved[5], carved[17]}
    assert (ids == carved[17]).sum() > (ids == carved[5]).sum()
    weights[:] = 1.0
    weights[::2] = 0.0  # every other example can never be drawn
    np.save(path, weights)
    ids = _ids(splits.load_for_config(_config(train_sample_weights=str(path))).train)
    assert not set(ids) & set(carved[::2]) and set(ids) <= set(carved[1::2])
    seeded = [_ids(splits.load_for_config(_config(train_sample_weights=str(path), **kw)).train)
              for kw in ({"seed": 1}, {"seed": 1, "bootstrap_seed": 1}, {"seed": 2}, {"seed": 2, "bootstrap_seed": 1})]
    assert np.array_equal(seeded[1], seeded[3]) and not np.array_equal(seeded[0], seeded[2])


@pytest.mark.parametrize("weights, message", [
    (None, "is not a file"),
    (np.ones(399), r"shape \(399,\).*needs one number per training example, shape \(400,\)"),
    (np.ones((400, 1)), r"shape \(400, 1\)"),
    (np.r_[np.ones(399), -1.0], "1 negative weights"),
    (np.r_[np.ones(399), np.nan], "1 NaN/Inf"),
    (np.zeros(400), "all zero"),
    (np.array(["a"] * 400), "<U1 array"),
])
def test_bad_weights_are_one_line_errors(tmp_path, weights, message):
    path = tmp_path / "w.npy"
    if weights is not None:
        np.save(path, weights)
    with pytest.raises(splits.SplitError, match=message) as err:
        splits.load_for_config(_config(train_sample_weights=str(path)))
    assert "\n" not in str(err.value)


def test_cv_folds_partition_the_training_split_stratified():
    folds = [splits.load_for_config(_config(cv_folds=4, cv_fold=k, num_train_examples=0)) for k in range(4)]
    validation = [_ids(f.validation) for f in folds]
    assert sorted(np.concatenate(validation)) == list(range(N))  # disjoint, and together all of train
    for f, v in zip(folds, validation):
        assert len(v) == N // 4 and sorted(np.r_[v, _ids(f.train)]) == list(range(N))
        per_class = np.bincount(f.validation.labels, minlength=10)
        assert per_class.max() - per_class.min() <= 1  # stratified: 60 of each class -> 15 per fold
    again = splits.load_for_config(_config(cv_folds=4, cv_fold=2, num_train_examples=0))
    assert np.array_equal(_ids(again.validation), validation[2])
    other_seed = splits.load_for_config(_config(cv_folds=4, cv_fold=2, num_train_examples=0, validation_seed=1))
    assert not np.array_equal(_ids(other_seed.validation), validation[2])


def test_cv_fold_with_a_limit_and_uneven_classes():
    labels = np.r_[np.zeros(7), np.ones(23)].astype(int)
    fold = splits.fold_of(labels, 3, seed=0)
    counts = np.array([[np.sum((fold == k) & (labels == c)) for c in (0, 1)] for k in range(3)])
    assert (counts.max(0) - counts.min(0) <= 1).all() and np.bincount(fold).tolist() == [10, 10, 10]
    data = splits.load_for_config(_config(cv_folds=3, cv_fold=1, num_train_examples=100))
    assert len(data.train) == 100 and len(data.validation) == N // 3
    assert not set(_ids(data.train)) & set(_ids(data.validation))
    with pytest.raises(splits.SplitError, match="exceeds the 400 training examples outside fold 1"):
        splits.load_for_config(_config(cv_folds=3, cv_fold=1, num_train_examples=401))
