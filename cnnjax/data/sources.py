"""Named datasets through tensorflow-datasets, read without TensorFlow (array_record data sources).

A split that fits in memory is decoded once and cached beside the TFDS files as a .npz of uint8
images and int labels, so later runs start in a second instead of re-decoding 60,000 PNGs.
"""

from __future__ import annotations

import os
import pathlib
import socket
import urllib.parse
import zipfile
from typing import Any

import numpy as np

from cnnjax.data import image_folder, offline_fashion_mnist
from cnnjax.data.types import DatasetMeta, DatasetUnavailableError, Split  # noqa: F401 (re-exported)
from cnnjax.errors import first_line


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
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise DatasetUnavailableError(f"data_dir {data_dir} is a file, not a directory; set --config.data_dir "
                                      "(or TFDS_DATA_DIR) to a directory")
    builder = _builder(name, data_dir)
    if builder.is_prepared():
        return data_dir
    if name == "fashion_mnist":
        if offline_fashion_mnist.available():
            try:
                offline_fashion_mnist.prepare(data_dir)
            except OSError as err:
                raise DatasetUnavailableError(
                    f"cannot prepare fashion_mnist in {data_dir} ({err.strerror or err}); set "
                    "--config.data_dir (or TFDS_DATA_DIR) to a writable directory") from None
            return data_dir
        raise DatasetUnavailableError(
            f"fashion_mnist is not prepared in {data_dir} and {offline_fashion_mnist.offline_dir()} has no "
            "IDX files: install them with `apt-get install dataset-fashion-mnist` (Debian, as root), or "
            "run `make demo`, which does, or prepare it online with tfds (file_format='array_record').")
    if name == "imagenet2012":  # TFDS' own builder needs TensorFlow and the manually downloaded tars
        raise DatasetUnavailableError(
            f"imagenet2012 is not prepared in {data_dir}: run `python -m cnnjax.data.prepare imagenet2012 "
            f"--manual_dir DIR --data_dir {data_dir}` with DIR holding ILSVRC2012_img_train.tar and "
            "ILSVRC2012_img_val.tar")
    _check_download_hosts(name, builder, data_dir)
    try:
        builder.download_and_prepare()
    except Exception as err:  # network, missing manual files, TensorFlow-only builders
        raise DatasetUnavailableError(
            f"{name} is not prepared in {data_dir} and could not be prepared here ({type(err).__name__}: "
            f"{first_line(err, 200)}). {_how_to_prepare(name, data_dir)}") from None
    return data_dir


def _how_to_prepare(name: str, data_dir: str) -> str:
    return (f"Prepare it on a machine with network access with `tfds.builder({name!r}, "
            f"file_format='array_record').download_and_prepare()` and copy {data_dir}/{name} here, "
            "or set --config.data_dir.")


def _check_download_hosts(name: str, builder: Any, data_dir: str) -> None:
    """Fails in milliseconds when the hosts of the dataset's registered URLs do not resolve (no network):
    TFDS would otherwise retry each download for minutes before giving up."""
    hosts = sorted({urllib.parse.urlparse(url).hostname for url in (builder.url_infos or {})} - {None})
    for host in hosts:
        try:
            socket.getaddrinfo(host, 443)
        except OSError as err:
            raise DatasetUnavailableError(
                f"{name} is not prepared in {data_dir} and must be downloaded from {host}, which this machine "
                f"cannot reach ({err.strerror or err}). {_how_to_prepare(name, data_dir)}") from None


def dataset_meta(name: str, data_dir: str = "") -> DatasetMeta:
    """Classes, image shape ((None, None, C) for variable-size images) and split sizes of a TFDS dataset or
    of a `folder:/path` of the user's images."""

    if image_folder.is_folder(name):
        return image_folder.dataset_meta(name)
    data_dir = ensure_prepared(name, data_dir)
    info = _builder(name, data_dir).info
    image_key, label_key = info.supervised_keys
    label = info.features[label_key]
    return DatasetMeta(
        name=name, num_classes=label.num_classes, class_names=tuple(label.names),
        image_shape=tuple(info.features[image_key].shape),
        splits={k: v.num_examples for k, v in info.splits.items()})


def load_split(name: str, split: str, data_dir: str = "") -> Split:
    """All examples of a TFDS split (or of a `folder:/path` of same-size images) as uint8 arrays, in TFDS' order."""
    import tensorflow_datasets as tfds


    if image_folder.is_folder(name):
        return image_folder.load_split(name, split)
    data_dir = ensure_prepared(name, data_dir)
    builder = _builder(name, data_dir)
    if split not in builder.info.splits:
        raise DatasetUnavailableError(
            f"{name} has no split {split!r}; it has {', '.join(builder.info.splits)}")
    cache = pathlib.Path(builder.data_dir) / f"cnnjax-{split}.npz"
    cached = _read_cache(cache, builder.info.splits[split].num_examples)
    if cached is not None:
        return cached
    image_key, label_key = builder.info.supervised_keys
    source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    examples = source.__getitems__(range(len(source)))
    split_arrays = Split(np.stack([e[image_key] for e in examples]).astype(np.uint8),
                         np.asarray([e[label_key] for e in examples], np.int32))
    tmp = cache.with_suffix(".tmp.npz")
    try:
        np.savez(tmp, images=split_arrays.images, labels=split_arrays.labels)
        tmp.replace(cache)  # atomic: a killed run never leaves a half-written cache
    except OSError:  # a read-only or full data_dir: decode again next time rather than fail
        tmp.unlink(missing_ok=True)
    return split_arrays


def _read_cache(cache: pathlib.Path, num_examples: int) -> Split | None:
    """The cached split, or None when there is none or it is damaged (truncated, wrong size): rebuilt then."""
    if not cache.is_file():
        return None
    try:
        with np.load(cache) as arrays:
            split = Split(arrays["images"], arrays["labels"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    return split if len(split.labels) == len(split.images) == num_examples else None
