"""Random access to a dataset's examples for a streaming input pipeline, without TensorFlow.

`open_source` gives the pipeline one example at a time: encoded image bytes for datasets of variable-size
images (ImageNet, image folders), which the pipeline decodes and crops itself, and uint8 arrays for small
fixed-size datasets (Fashion-MNIST), decoded once and cached by `sources.load_split`. A `RecordSource`
pickles as (name, split, data_dir) only and opens its files lazily, so worker processes reopen it cheaply
instead of receiving a copy of the data. (Writing datasets: `tfds_writer`.)
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from cnnjax.data import image_folder
from cnnjax.data.sources import DatasetMeta, DatasetUnavailableError, dataset_meta, ensure_prepared, load_split

log = logging.getLogger(__name__)


class _Reader(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, Any]: ...


class RecordSource:
    """Random access to the examples of one split: `source[i] == {"image": bytes | uint8 array, "label": int}`.

    Holds only (name, split, data_dir) when pickled; the files are opened on first use in each process.
    """

    def __init__(self, name: str, split: str, data_dir: str = "") -> None:
        self.name, self.split, self.data_dir = name, split, data_dir
        self._reader: _Reader | None = None
        self._meta: DatasetMeta | None = None

    def __getstate__(self) -> dict[str, str]:
        return {"name": self.name, "split": self.split, "data_dir": self.data_dir}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["name"], state["split"], state["data_dir"])

    def __repr__(self) -> str:
        return f"RecordSource({self.name!r}, {self.split!r}, data_dir={self.data_dir!r})"

    @property
    def meta(self) -> DatasetMeta:
        if self._meta is None:
            self._meta = dataset_meta(self.name, self.data_dir)
        return self._meta

    @property
    def reader(self) -> _Reader:
        if self._reader is None:
            self._reader = _open_reader(self)
        return self._reader

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for the {len(self)} examples of {self}")
        return self.reader[index % len(self)]


def open_source(name: str, split: str, data_dir: str = "") -> RecordSource:
    """The examples of `split` of dataset `name` (a TFDS name or `folder:/path`); fails at once, with a
    one-line error, when the dataset is not prepared or has no such split."""
    source = RecordSource(name, split, data_dir)
    if image_folder.is_folder(name):
        source.reader  # noqa: B018 - lists the files and checks the split, without reading every image header
    elif split not in source.meta.splits:
        raise DatasetUnavailableError(f"{name} has no split {split!r}; it has {', '.join(source.meta.splits)}")
    return source


def _open_reader(source: RecordSource) -> _Reader:
    """A folder's files, a fixed-size dataset's arrays, or the TFDS records of variable-size images."""
    if image_folder.is_folder(source.name):  # (its meta would read every image header: not needed here)
        return image_folder.FolderReader(source.name, source.split)
    if None not in source.meta.image_shape:  # small fixed-size images: decoded once, cached as arrays
        return _ArrayReader(source.name, source.split, source.data_dir)
    return _TfdsReader(source.name, source.split, source.data_dir)


class _ArrayReader:
    """A split held in memory as uint8 arrays (what the in-memory pipeline loads too)."""

    def __init__(self, name: str, split: str, data_dir: str) -> None:
        self._split = load_split(name, split, data_dir)

    def __len__(self) -> int:
        return len(self._split)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": self._split.images[index], "label": int(self._split.labels[index])}


class _TfdsReader:
    """TFDS' array_record data source with the image left encoded (TFDS' own numpy parser, no TensorFlow)."""

    def __init__(self, name: str, split: str, data_dir: str) -> None:
        import tensorflow_datasets as tfds

        data_dir = ensure_prepared(name, data_dir)
        info = tfds.builder(name, data_dir=data_dir, file_format="array_record").info
        self._image_key, self._label_key = info.supervised_keys
        self._source = tfds.data_source(name, split=split, data_dir=data_dir, download=False,
                                        decoders={self._image_key: tfds.decode.SkipDecoding()})

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        example = self._source[index]
        return {"image": bytes(example[self._image_key]), "label": int(example[self._label_key])}
