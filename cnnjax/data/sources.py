"""Named datasets through tensorflow-datasets, read without TensorFlow (array_record data sources).

A split that fits in memory is decoded once and cached beside the TFDS files as a .npz of uint8
images and int labels, so later runs start in a second instead of re-decoding 60,000 PNGs.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np

from cnnjax.data import offline_fashion_mnist
from cnnjax.errors import CnnjaxError


class DatasetUnavailableError(CnnjaxError, RuntimeError):
    """The dataset is neither prepared locally nor obtainable here; the message says how to get it."""


@dataclasses.dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int32

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> "Split":
        return Split(self.images[index], self.labels[index])


@dataclasses.dataclass(frozen=True)
class DatasetMeta:
    name: str
    num_classes: int
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    splits: dict[str, int]


def resolve_data_dir(data_dir: str = "") -> str:
    return data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def _builder(name: str, data_dir: str):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir, file_format="array_record")
    except tfds.core.registered.DatasetNotFoundError:
        raise DatasetUnavailableError(
            f"unknown TFDS dataset {name!r}; see https://www.tensorflow.org/datasets/catalog") from None


def ensure_prepared(name: str, data_dir: str = "") -> str:
    """Makes sure TFDS' files for `name` exist under data_dir (offline Fashion-MNIST if needed)."""
    data_dir = resolve_data_dir(data_dir)
    builder = _builder(name, data_dir)
    if builder.is_prepared():
        return data_dir
    if name == "fashion_mnist":
        if offline_fashion_mnist.available():
            offline_fashion_mnist.prepare(data_dir)
            return data_dir
        raise DatasetUnavailableError(
            f"fashion_mnist is not prepared in {data_dir} and {offline_fashion_mnist.offline_dir()} has no "
            "IDX files: install them with `apt-get install dataset-fashion-mnist` (Debian, as root), or "
            "run `make demo`, which does, or prepare it online with tfds (file_format='array_record').")
    try:
        builder.download_and_prepare()
    except Exception as err:  # network, missing manual files, TensorFlow-only builders
        raise DatasetUnavailableError(
            f"{name} is not prepared in {data_dir} and could not be prepared here ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}). Prepare it on a machine with network access with "
            f"`tfds.builder({name!r}, file_format='array_record').download_and_prepare()` and copy "
            f"{data_dir}/{name} here, or set --config.data_dir.") from None
    return data_dir


def dataset_meta(name: str, data_dir: str = "") -> DatasetMeta:
    data_dir = ensure_prepared(name, data_dir)
    info = _builder(name, data_dir).info
    image_key, label_key = info.supervised_keys
    label = info.features[label_key]
    return DatasetMeta(
        name=name, num_classes=label.num_classes, class_names=tuple(label.names),
        image_shape=tuple(info.features[image_key].shape),
        splits={k: v.num_examples for k, v in info.splits.items()})


def load_split(name: str, split: str, data_dir: str = "") -> Split:
    """All examples of a TFDS split as uint8 arrays, in TFDS' order."""
    import tensorflow_datasets as tfds

    data_dir = ensure_prepared(name, data_dir)
    builder = _builder(name, data_dir)
    if split not in builder.info.splits:
        raise DatasetUnavailableError(
            f"{name} has no split {split!r}; it has {', '.join(builder.info.splits)}")
    cache = pathlib.Path(builder.data_dir) / f"cnnjax-{split}.npz"
    if cache.is_file():
        with np.load(cache) as arrays:
            return Split(arrays["images"], arrays["labels"])
    image_key, label_key = builder.info.supervised_keys
    source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    examples = source.__getitems__(range(len(source)))
    split_arrays = Split(np.stack([e[image_key] for e in examples]).astype(np.uint8),
                         np.asarray([e[label_key] for e in examples], np.int32))
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, images=split_arrays.images, labels=split_arrays.labels)
    tmp.replace(cache)  # atomic: a killed run never leaves a half-written cache
    return split_arrays
