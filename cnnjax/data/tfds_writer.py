"""Writing a TFDS dataset without TensorFlow: what ImageNet and offline Fashion-MNIST preparation share.

`write_prepared` runs a TFDS builder whose `_split_generators` read local files (no download), so TFDS
itself writes the array_record shards, dataset_info.json and features.json: what `tfds.builder(...)` and
`tfds.data_source` read later is exactly TFDS' format. TFDS stages everything in an `incomplete.*`
directory and renames it into place at the end, so an interrupted preparation never looks prepared.
One piece of TFDS needs TensorFlow: once a split exceeds 1 GB its shuffler spills to temporary bucket
files through `tf.io.gfile`. Builders mixing in `WritesWithoutTensorFlow` generate their splits with
TFDS' own Writer (same serialisation, hashing, order and sharding) whose buckets are plain files.
"""

from __future__ import annotations

import logging
import pathlib
import shutil
from typing import Any, Iterator

log = logging.getLogger(__name__)


def write_prepared(builder: Any, num_shards: int = 0) -> None:
    """Writes `builder`'s dataset from its local generators (nothing is downloaded); `num_shards` > 0 fixes
    the number of shards of every split, 0 lets TFDS choose by size (1024 for ImageNet's train split)."""
    import tensorflow_datasets as tfds

    remove_incomplete(pathlib.Path(builder.data_dir).parent)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        try_download_gcs=False, num_shards=num_shards or None))


def remove_incomplete(dataset_dir: pathlib.Path) -> None:
    """Deletes what an interrupted preparation left (TFDS' `incomplete.*` staging directories): TFDS does not
    resume them, and a killed ImageNet preparation can leave 100+ GB behind."""
    for stale in sorted(dataset_dir.glob("incomplete.*")):
        log.warning("removing %s, left by an interrupted preparation", stale)
        shutil.rmtree(stale, ignore_errors=True)


class WritesWithoutTensorFlow:
    """Mixin (before the TFDS builder class) replacing GeneratorBasedBuilder._download_and_prepare by the
    same loop over TFDS' Writer, with a shuffler whose temporary buckets are plain files."""

    def _download_and_prepare(self, dl_manager: Any, download_config: Any) -> None:
        from tensorflow_datasets.core import example_serializer, shuffle, splits, writer

        builder: Any = self
        features = builder.info.features
        infos = []
        for split, examples in builder._split_generators(dl_manager).items():
            template = builder._get_filename_template(split_name=split)
            split_writer = writer.Writer(
                serializer=example_serializer.ExampleSerializer(features.get_serialized_info()),
                filename_template=template, hash_salt=split, disable_shuffling=builder.info.disable_shuffling,
                example_writer=builder._example_writer(), shard_config=download_config.get_shard_config())
            shuffler = split_writer._shuffler  # TFDS' hashing and bucketing, with plain-file buckets
            shuffler._buckets = [_FileBucket(pathlib.Path(bucket._path)) for bucket in shuffler._buckets]
            shuffle._increase_open_files_limit()  # one open file per bucket once it spills
            for key, example in examples:
                split_writer.write(key, features.encode_example(example))
            shard_lengths, num_bytes = split_writer.finalize()
            infos.append(splits.SplitInfo(name=split, shard_lengths=shard_lengths, num_bytes=num_bytes,
                                          filename_template=template))
        builder.info.set_splits(splits.SplitDict(infos))


class _FileBucket:
    """A TFDS shuffle bucket (records of key: 16 bytes, size: 8 bytes, data) in a plain file."""

    def __init__(self, path: pathlib.Path) -> None:
        self._path, self._file, self._length, self._size = path, None, 0, 0

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return self._length

    def add(self, key: int, data: bytes) -> None:
        if self._file is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self._path, "wb")  # noqa: SIM115 - closed by flush()
        self._file.write(key.to_bytes(16, "big") + len(data).to_bytes(8, "big"))
        self._file.write(data)
        self._length += 1
        self._size += len(data)

    def flush(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def read_values(self) -> Iterator[tuple[int, bytes]]:
        self.flush()
        if not self._path.exists():  # nothing was added to this bucket
            return
        with open(self._path, "rb") as f:
            while header := f.read(24):
                yield int.from_bytes(header[:16], "big"), f.read(int.from_bytes(header[16:], "big"))

    def del_file(self) -> None:
        self._path.unlink(missing_ok=True)
