"""Fashion-MNIST for TFDS without a network: built from the Debian package `dataset-fashion-mnist`.

The Debian gzips hold the same IDX content as the files TFDS downloads, but they are compressed
differently, so TFDS' registered checksums cannot vouch for them. Instead the decoded content is verified
(60,000 train / 10,000 test images of 28x28, 10 balanced classes) and written as the regular TFDS
`fashion_mnist` dataset (same name, version and features), which every later load reads like any other.
"""

from __future__ import annotations

import gzip
import os
import pathlib

import numpy as np

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60_000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10_000),
}


def offline_dir() -> pathlib.Path:
    """Where the Debian files are; CNNJAX_FASHION_MNIST_DIR overrides (e.g. a copy elsewhere)."""
    return pathlib.Path(os.environ.get("CNNJAX_FASHION_MNIST_DIR", DEBIAN_DIR))


def available() -> bool:
    return all((offline_dir() / f).is_file() for images, labels, _ in FILES.values() for f in (images, labels))


def read_idx(path: pathlib.Path) -> np.ndarray:
    """Decodes a (gzipped) IDX file of unsigned bytes: magic 0x0000_08_<ndim>, big-endian dims, data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: {data.size} bytes for shape {dims}")
    return data.reshape(dims)


def read_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28, 1) uint8 and labels (N,) of a split, checked against Fashion-MNIST's shape."""
    images_file, labels_file, count = FILES[split]
    images = read_idx(offline_dir() / images_file)[..., None]
    labels = read_idx(offline_dir() / labels_file).astype(np.int64)
    if images.shape != (count, 28, 28, 1) or labels.shape != (count,):
        raise ValueError(f"Fashion-MNIST {split}: got images {images.shape} and labels {labels.shape}, "
                         f"expected ({count}, 28, 28, 1) and ({count},)")
    if not np.array_equal(np.bincount(labels, minlength=10), np.full(10, count // 10)):
        raise ValueError(f"Fashion-MNIST {split}: labels are not 10 balanced classes")
    return images, labels


def prepare(data_dir: str) -> None:
    """Writes the TFDS `fashion_mnist` dataset (array_record) under `data_dir` from the Debian files."""
    from PIL import Image
    from tensorflow_datasets.image_classification import mnist

    from cnnjax.data import tfds_writer

    class OfflineFashionMNIST(tfds_writer.WritesWithoutTensorFlow, mnist.FashionMNIST, skip_registration=True):
        name = "fashion_mnist"

        def _split_generators(self, dl_manager):  # noqa: ARG002 - nothing to download
            return {split: self._generate_examples(split) for split in FILES}

        def _generate_examples(self, split):  # same keys as TFDS' own builder -> same order
            images, labels = read_split(split)
            for index, (image, label) in enumerate(zip(images, labels)):
                # PIL images are encoded by TFDS without TensorFlow.
                yield index, {"image": Image.fromarray(image[..., 0], mode="L"), "label": int(label)}

    tfds_writer.write_prepared(OfflineFashionMNIST(data_dir=data_dir, file_format="array_record"))
