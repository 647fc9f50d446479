"""Datasets (TFDS, offline Fashion-MNIST), splits, on-device pipeline and augmentation."""

from cnnjax.data.sources import DatasetUnavailableError, Split, dataset_meta, load_split
from cnnjax.data.splits import Datasets, load_datasets

__all__ = ["DatasetUnavailableError", "Datasets", "Split", "dataset_meta", "load_datasets", "load_split"]
