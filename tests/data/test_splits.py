import numpy as np
import pytest

from cnnjax.data.sources import Split
from cnnjax.data import splits
from cnnjax.data.splits import carve_validation, channel_stats


def _split(n=100):
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)
    return Split(images, np.arange(n, dtype=np.int32) % 10)


def test_validation_is_disjoint_and_seeded():
    train, val = carve_validation(_split(), 20, seed=3)
    assert len(train) == 80 and len(val) == 20
    assert not set(train.images.ravel()) & set(val.images.ravel())
    again_train, again_val = carve_validation(_split(), 20, seed=3)
    assert np.array_equal(val.images, again_val.images)
    _, other = carve_validation(_split(), 20, seed=4)
    assert not np.array_equal(val.images, other.images)


def test_limit_caps_training_examples_but_not_validation():
    train, val = carve_validation(_split(), 20, seed=0, limit=30)
    assert len(train) == 30 and len(val) == 20


def test_no_validation():
    train, val = carve_validation(_split(), 0, seed=0)
    assert val is None and len(train) == 100


def test_channel_stats_of_fashion_mnist(fashion_mnist):
    mean, std = fashion_mnist.mean, fashion_mnist.std
    assert abs(mean[0] - 0.286) < 0.003 and abs(std[0] - 0.353) < 0.003
    assert channel_stats(_split(2)) == ((0.5 / 255,), (0.5 / 255,))


@pytest.mark.parametrize("key, value", [("class_subset", (5, 6)), ("labels_per_class", 10)])
@pytest.mark.parametrize("where", [{"input_pipeline": "stream"}, {"dataset": "synthetic"}])
def test_class_selection_is_refused_where_it_would_be_ignored(key, value, where):
    """The streaming pipeline and the synthetic dataset never read class_subset/labels_per_class: refused."""
    from cnnjax.config import base_config

    config = base_config()
    config.update({key: value, **where})
    with pytest.raises(splits.SplitError, match="need the in-memory pipeline and a real dataset"):
        splits.check_class_keys(config)
    config.update({"input_pipeline": "memory", "dataset": "fashion_mnist"})
    splits.check_class_keys(config)  # the in-memory pipeline on a real dataset takes them
