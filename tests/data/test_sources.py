import hashlib
import pathlib

import numpy as np
import pytest

from cnnjax.data import DatasetUnavailableError, load_split, offline_fashion_mnist
from cnnjax.data.sources import dataset_meta


def test_fashion_mnist_through_tfds_has_the_published_shape(fashion_mnist):
    meta = fashion_mnist.meta
    assert meta.name == "fashion_mnist" and meta.num_classes == 10
    assert meta.splits == {"train": 60_000, "test": 10_000}
    assert meta.class_names[0] == "T-shirt/top" and meta.class_names[9] == "Ankle boot"
    train, test = load_split("fashion_mnist", "train"), load_split("fashion_mnist", "test")
    assert train.images.shape == (60_000, 28, 28, 1) and train.images.dtype == np.uint8
    assert test.images.shape == (10_000, 28, 28, 1) and test.labels.dtype == np.int32
    assert np.array_equal(np.bincount(test.labels), np.full(10, 1000))


def _fingerprints(images, labels):
    return sorted(hashlib.sha1(i.tobytes() + bytes([int(l)])).hexdigest() for i, l in zip(images, labels))


def test_tfds_content_equals_the_debian_idx_files():
    """TFDS stores examples in its own order; as a multiset they are exactly the IDX content."""
    tfds_test = load_split("fashion_mnist", "test")
    idx_images, idx_labels = offline_fashion_mnist.read_split("test")
    assert _fingerprints(tfds_test.images, tfds_test.labels) == _fingerprints(idx_images, idx_labels)


def test_missing_offline_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNJAX_FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(DatasetUnavailableError, match="apt-get install dataset-fashion-mnist"):
        dataset_meta("fashion_mnist", str(tmp_path / "tfds"))


def test_unknown_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="unknown TFDS dataset 'fashion_mnistt'"):
        dataset_meta("fashion_mnistt", str(tmp_path))


def test_corrupt_idx_file_is_rejected(tmp_path):
    import gzip

    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 100)
    with pytest.raises(ValueError, match="truncated"):
        offline_fashion_mnist.read_idx(path)


def test_a_damaged_split_cache_is_rebuilt(fashion_mnist, tmp_path):
    """A truncated cnnjax-*.npz (a full disk, a copy cut short) is decoded again, not a BadZipFile."""
    import shutil

    from cnnjax.data.sources import resolve_data_dir

    data_dir = tmp_path / "tfds"
    shutil.copytree(pathlib.Path(resolve_data_dir()) / "fashion_mnist", data_dir / "fashion_mnist")
    cache = next((data_dir / "fashion_mnist").rglob("cnnjax-test.npz"))
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 3])
    split = load_split("fashion_mnist", "test", str(data_dir))
    assert split.images.shape == (10_000, 28, 28, 1)
    assert np.array_equal(split.labels, fashion_mnist.test.labels)
    with np.load(cache) as rebuilt:
        assert rebuilt["labels"].shape == (10_000,)


def test_a_data_dir_that_is_a_file_is_a_clear_error(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(DatasetUnavailableError, match="is a file, not a directory"):
        load_split("fashion_mnist", "test", str(path))
