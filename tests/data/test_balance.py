"""Class imbalance options (cnnjax/data/balance.py) reach what they change: the carved training split, the
epoch's order of TrainBatches, the augmentation of the extra copies and the loss of the real train step.

The dataset is synthetic (each image holds its own example id, so a split's examples can be read off its
pixels); the recall test on real Fashion-MNIST is tests/train/test_imbalance_recall.py.
"""

from __future__ import annotations

import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.config import ConfigError, base_config, load_config, validate
from cnnjax.data import balance, splits
from cnnjax.data.pipeline import DeviceSplit, TrainBatches
from cnnjax.data.sources import DatasetMeta, Split
from cnnjax.train import experiment
from cnnjax.train.step import StepConfig, example_mean

COUNTS = (300, 200, 100, 60, 40)  # examples of each class in the synthetic train split (700 in all)
N = sum(COUNTS)


def _split(counts: tuple[int, ...], offset: int = 0) -> Split:
    labels = np.repeat(np.arange(len(counts)), counts).astype(np.int32)
    ids = np.arange(offset, offset + len(labels))
    images = np.stack([ids % 256, ids // 256], -1).astype(np.uint8).reshape(-1, 1, 1, 2)
    return Split(images, labels)


def _ids(split: Split) -> np.ndarray:
    return split.images[:, 0, 0, 0].astype(int) + 256 * split.images[:, 0, 0, 1].astype(int)


@pytest.fixture
def synthetic(monkeypatch):
    meta = DatasetMeta("synthetic_imbalance", len(COUNTS), tuple("abcde"), (1, 1, 2), {"train": N, "test": 50})
    monkeypatch.setattr(splits, "dataset_meta", lambda name, data_dir="": meta)
    monkeypatch.setattr(splits, "load_split", lambda name, split, data_dir="":
                        _split(COUNTS) if split == "train" else _split((10,) * 5, offset=N))


def _config(**kw):
    c = base_config()
    c.model, c.validation_size, c.batch_size = "mlp", 100, 20
    for k, v in kw.items():
        c[k] = v
    return c


def _orders(batches: TrainBatches, epochs: tuple[int, ...]) -> list[np.ndarray]:
    """The epochs' orders from one compiled `order` (as the loop compiles it): eager dispatch costs more CPU."""
    order = jax.jit(batches.order)
    return [np.asarray(order(epoch)) for epoch in epochs]


def test_oversampled_epoch_is_balanced_within_a_binomial_bound_and_a_function_of_seed_and_epoch():
    labels = _split(COUNTS).labels
    batches = TrainBatches(N, 20, seed=3, sampler=balance.epoch_sampler("oversample", labels))
    assert batches.epoch_size == N and batches.steps_per_epoch == N // 20
    k = len(COUNTS)
    sigma = math.sqrt(N * (1 / k) * (1 - 1 / k))  # each draw's class is uniform over the K classes
    first, second, again = _orders(batches, (0, 1, 0))
    for order in (first, second):
        counts = np.bincount(labels[order], minlength=k)
        assert np.all(np.abs(counts - N / k) <= 5 * sigma), counts  # 5 sigma: P(false alarm) < 1e-5
    assert counts[-1] > 2 * COUNTS[-1]  # the smallest class is drawn far more often than it occurs
    assert np.array_equal(first, again)  # resume: a pure function of (seed, epoch)
    assert not np.array_equal(first, second)


def test_undersampled_epoch_is_exactly_balanced_and_a_fresh_subset_each_epoch():
    labels = _split(COUNTS).labels
    batches = TrainBatches(N, 20, seed=0, sampler=balance.epoch_sampler("undersample", labels))
    per_class = min(COUNTS)
    assert batches.epoch_size == len(COUNTS) * per_class and batches.steps_per_epoch == 10
    orders = _orders(batches, (0, 1))
    for order in orders:
        assert np.array_equal(np.bincount(labels[order]), [per_class] * len(COUNTS))
        assert len(set(order.tolist())) == len(order)  # without replacement
    assert set(orders[0].tolist()) != set(orders[1].tolist())  # class 0: 40 of 300, another subset


def test_minority_crops_visits_every_example_and_tops_classes_up_with_differently_augmented_copies():
    split = _split(COUNTS)
    sampler = balance.epoch_sampler("minority_crops", split.labels)
    batches = TrainBatches(N, 50, seed=0, augment_spec="random_crop(padding=4)", sampler=sampler)
    (order,) = _orders(batches, (0,))
    assert np.array_equal(np.bincount(split.labels[order]), [max(COUNTS)] * len(COUNTS))
    assert set(order.tolist()) == set(range(N))  # every example at least once
    # The copies of one smallest-class example (300 / 40: 7 or 8 of them) each get their own random crop.
    # The images are 1x1, so pad to 9x9 and read where the pixel went: 81 offsets, all 7 equal has p = 81^-6.
    big = np.zeros((N, 9, 9, 2), np.uint8)
    big[:, 4, 4] = split.images[:, 0, 0]
    data = DeviceSplit(jnp.asarray(big), jnp.asarray(split.labels))
    example = int(np.flatnonzero(split.labels == len(COUNTS) - 1)[0])
    where, batch = [], jax.jit(batches)
    for step in sorted({int(p) // 50 for p in np.flatnonzero(order == example)}):
        images, _ = batch(data, jnp.asarray(order), jnp.int32(step))
        for position in np.flatnonzero(order[step * 50:(step + 1) * 50] == example):
            where.append(np.argwhere(np.asarray(images[position, :, :, 0]) != 0).tolist())
    assert len(where) >= max(COUNTS) // min(COUNTS)
    assert len({str(w) for w in where}) > 1, where


def test_balanced_class_weights_are_sklearns_and_average_one_over_the_examples():
    labels = _split(COUNTS).labels
    weights = np.array(balance.class_weights("balanced", labels, 7))  # two classes absent: weight 0
    expected = [N / (len(COUNTS) * n) for n in COUNTS]
    np.testing.assert_allclose(weights[:5], expected, rtol=8 * np.finfo(np.float64).eps)
    assert weights[5:].tolist() == [0.0, 0.0]
    assert weights[labels].mean() == pytest.approx(1.0, rel=N * np.finfo(np.float64).eps)
    assert balance.class_weights("1, 2, 3,4,5", labels, 5) == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert balance.class_weights("", labels, 5) == ()


def test_the_weighted_loss_is_the_mean_of_weight_times_loss_over_the_batch():
    """The formula of the step's loss (the recall test proves the step applies it: the weighted run differs)."""
    rng = np.random.default_rng(0)
    losses, labels = rng.uniform(0, 3, 16).astype(np.float32), rng.integers(0, 4, 16).astype(np.int32)
    weights = (0.5, 2.0, 0.0, 3.0)
    expected = (np.asarray(weights, np.float64)[labels] * losses).sum() / 16  # by B, not by sum(w)
    tolerance = 16 * float(np.finfo(np.float32).eps)
    weighted = example_mean(jnp.asarray(losses), jnp.asarray(labels), weights)
    assert float(weighted) == pytest.approx(expected, rel=tolerance)
    plain = example_mean(jnp.asarray(losses), jnp.asarray(labels))
    assert float(plain) == pytest.approx(losses.mean(), rel=tolerance)
    assert StepConfig.from_config(base_config(), [1, 2]).class_weights == (1, 2)


def test_class_counts_carve_train_only_seeded_and_train_classes_keep_statistics(synthetic):
    plain = splits.load_for_config(_config())
    want = (50, 40, 30, 20, 10)
    carved = splits.load_for_config(_config(class_counts=want))
    assert np.bincount(carved.train.labels).tolist() == list(want)
    assert set(_ids(carved.train)) <= set(_ids(plain.train))
    assert np.array_equal(_ids(carved.train), _ids(splits.load_for_config(_config(class_counts=want)).train))
    assert not np.array_equal(_ids(carved.train),
                              _ids(splits.load_for_config(_config(class_counts=want, validation_seed=1)).train))
    for name in ("validation", "test"):
        assert np.array_equal(_ids(carved.split(name)), _ids(plain.split(name)))
    assert (carved.mean, carved.std) == splits.channel_stats(carved.train)  # the imbalanced dataset's own
    stage1 = splits.load_for_config(_config(class_counts=want, train_classes=(0, 1, 2)))
    assert set(stage1.train.labels.tolist()) == {0, 1, 2}
    assert np.array_equal(_ids(stage1.train), _ids(carved.train)[carved.train.labels < 3])
    assert (stage1.mean, stage1.std) == (carved.mean, carved.std)  # both stages normalise alike


def test_the_config_reaches_the_experiments_batches_and_weights_and_stage_one_sees_its_classes(synthetic):
    exp = experiment.build(_config(class_balance="undersample", train_classes=(1, 3, 4)))
    labels = np.asarray(exp.data.train.labels)
    least = int(np.bincount(labels)[[1, 3, 4]].min())  # class 4 after the validation carve (40 before)
    for order in _orders(exp.batches, (0, 1)):
        assert np.bincount(labels[order], minlength=5).tolist() == [0, least, 0, least, least]
    assert exp.batches.steps_per_epoch == 3 * least // 20 and exp.class_weights == ()
    weighted = experiment.build(_config(class_weights="balanced"))
    assert weighted.class_weights == balance.class_weights("balanced", weighted.data.train.labels, 5)
    assert weighted.batches.sampler is None


@pytest.mark.parametrize("changes, message", [
    ({"class_balance": "smote"}, "class_balance must be one of"),
    ({"class_balance": "minority_crops"}, "set --config.augment"),
    ({"class_weights": "heavy"}, "does not parse"),
    ({"class_weights": "1,-2"}, "finite weights >= 0"),
    ({"class_weights": "balanced", "class_balance": "oversample"}, "over-correct"),
    ({"class_counts": (10, 0)}, "class_counts must be a tuple of integers >= 1"),
    ({"train_classes": (1, 1)}, "lists a class twice"),
    ({"class_balance": "oversample", "input_pipeline": "stream"}, "input_pipeline=memory"),
])
def test_bad_imbalance_options_are_one_line_config_errors(changes, message):
    with pytest.raises(ConfigError, match=message) as err:
        validate(_config(**changes))
    assert "\n" not in str(err.value)


def test_counts_the_data_cannot_give_are_one_line_errors(synthetic):
    with pytest.raises(balance.BalanceError, match=r"class_counts\[4\]=99 exceeds the \d+ training examples"):
        splits.load_for_config(_config(class_counts=(1, 1, 1, 1, 99)))
    with pytest.raises(balance.BalanceError, match="one count per class"):
        splits.load_for_config(_config(class_counts=(1, 1)))
    with pytest.raises(balance.BalanceError, match=r"train_classes lists \[7\]"):
        splits.load_for_config(_config(train_classes=(0, 7)))
    with pytest.raises(ConfigError, match="3 weights for 5 classes"):
        experiment.build(_config(class_weights="1,2,3"))


def test_the_two_stage_configs_train_stage_one_on_the_large_classes_then_all_on_the_same_data():
    configs = pathlib.Path(__file__).resolve().parents[2] / "configs/fashion_mnist"
    stage1 = load_config(str(configs / "imbalanced_stage1.py"))
    stage2 = load_config(str(configs / "imbalanced_stage2.py"))
    assert stage1.train_classes == (0, 1, 2, 3, 4) and stage2.train_classes == ()
    counts = np.array(stage1.class_counts)
    assert set(stage1.train_classes) == set(np.flatnonzero(counts == counts.max()).tolist())
    for key in ("model", "dataset", "class_counts", "validation_size", "validation_seed", "model_overrides"):
        assert stage1[key] == stage2[key], key
