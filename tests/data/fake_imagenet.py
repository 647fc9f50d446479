"""A miniature ImageNet manual download, in exactly the real archives' format, and its prepared dataset.

Real synset ids (the first NUM_SYNSETS of TFDS' labels, so label ids are the real ones and the dataset keeps
1000 classes), TRAIN_PER_SYNSET train JPEGs per synset named like ILSVRC's (n01440764_1.JPEG) in one inner
tar per synset, NUM_VALIDATION validation JPEGs ILSVRC2012_val_00000001.JPEG ... with a
validation_labels.txt beside the tars. Each class is a solid colour plus noise (learnable), sides 40-80 px.
Everything is generated from a fixed seed, so two builds are byte-identical.

Use from any test module:

    from tests.data.fake_imagenet import fake_imagenet  # noqa: F401  (the session fixture: its data_dir)
"""

from __future__ import annotations

import io
import pathlib
import tarfile

import numpy as np
import pytest

NUM_SYNSETS, TRAIN_PER_SYNSET, NUM_VALIDATION = 5, 6, 10
NUM_SHARDS = 3  # several shards per split, as the real dataset has


def fake_synsets() -> tuple[str, ...]:
    from cnnjax.data import imagenet

    return imagenet.synsets()[:NUM_SYNSETS]


def class_colour(label_index: int) -> np.ndarray:
    """The solid RGB colour of the fake's label_index-th synset."""
    return np.array([(70 * label_index) % 256, 255 - 50 * label_index, (130 + 90 * label_index) % 256], np.uint8)


def _jpeg(rng: np.random.Generator, label_index: int) -> bytes:
    from PIL import Image

    height, width = rng.integers(40, 81, size=2)
    noise = rng.integers(-20, 21, size=(height, width, 3))
    pixels = np.clip(class_colour(label_index).astype(int) + noise, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 1_331_000_000  # a fixed mtime: byte-identical archives
    archive.addfile(info, io.BytesIO(data))


def make_fake_imagenet(root: str | pathlib.Path) -> pathlib.Path:
    """Writes ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar and validation_labels.txt into root/manual;
    returns that manual_dir (what `python -m cnnjax.data.prepare imagenet2012 --manual_dir` takes)."""
    from cnnjax.data import imagenet

    manual = pathlib.Path(root) / "manual"
    manual.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2012)
    synsets = fake_synsets()
    with tarfile.open(manual / imagenet.TRAIN_TAR, "w") as train:
        for index, synset in enumerate(synsets):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as per_synset:
                for i in range(1, TRAIN_PER_SYNSET + 1):
                    _add(per_synset, f"{synset}_{i}.JPEG", _jpeg(rng, index))
            _add(train, f"{synset}.tar", inner.getvalue())
    labels = [synsets[(3 * i) % NUM_SYNSETS] for i in range(NUM_VALIDATION)]  # the labels in sorted name order
    with tarfile.open(manual / imagenet.VAL_TAR, "w") as validation:
        for i in reversed(range(NUM_VALIDATION)):  # not sorted in the tar: TFDS sorts the names
            _add(validation, f"ILSVRC2012_val_{i + 1:08d}.JPEG", _jpeg(rng, synsets.index(labels[i])))
    (manual / imagenet.VALIDATION_LABELS).write_text("".join(f"{label}\n" for label in labels))
    return manual


def prepare_fake_imagenet(tmp: str | pathlib.Path) -> str:
    """make_fake_imagenet(tmp), then prepared into tmp/tfds (NUM_SHARDS shards per split); returns the data_dir."""
    from cnnjax.data import imagenet

    data_dir = pathlib.Path(tmp) / "tfds"
    imagenet.prepare(str(make_fake_imagenet(tmp)), str(data_dir), num_shards=NUM_SHARDS)
    return str(data_dir)


def archive_images(manual_dir: str | pathlib.Path) -> dict[str, bytes]:
    """Every image of the fake's tars by file name, as the archives hold them (to compare bytes with)."""
    from cnnjax.data import imagenet

    images = {}
    with tarfile.open(pathlib.Path(manual_dir) / imagenet.TRAIN_TAR) as train:
        for member in train:
            with tarfile.open(fileobj=train.extractfile(member)) as inner:
                images.update({m.name: inner.extractfile(m).read() for m in inner})
    with tarfile.open(pathlib.Path(manual_dir) / imagenet.VAL_TAR) as validation:
        images.update({m.name: validation.extractfile(m).read() for m in validation})
    return images


@pytest.fixture(scope="session")
def fake_imagenet(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The data_dir of the fake ImageNet prepared as imagenet2012 (its manual dir is beside it: ../manual)."""
    return prepare_fake_imagenet(tmp_path_factory.mktemp("fake_imagenet"))
