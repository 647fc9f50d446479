"""ImageNet (ILSVRC 2012) prepared into TFDS' `imagenet2012` dataset without TensorFlow.

TFDS' own builder reads the manually downloaded tars through `tf.io.gfile`, so it fails where TensorFlow
is not installed. This module reads the same tars with `tarfile`, streaming (nothing is extracted to disk),
and hands the examples to a subclass of TFDS' builder whose only change is where examples come from: same
name, version, features (the original JPEG bytes, the synset as TFDS' label id, the file name) and keys,
so TFDS writes the same array_record shards, in the same order, as its own builder would.

Images are kept as their original bytes, like TFDS. The exception is TFDS' list of 22 CMYK JPEGs and one
PNG named .JPEG: any image that is not a JPEG in RGB or grayscale is decoded by PIL and re-encoded as an
RGB JPEG (quality 100, as TFDS does). PIL's CMYK conversion may differ slightly from TensorFlow's.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import pathlib
import posixpath
import tarfile
import time
from typing import Any, Iterator

from cnnjax.data import tfds_writer
from cnnjax.data.sources import resolve_data_dir
from cnnjax.errors import CnnjaxError

log = logging.getLogger(__name__)

NAME = "imagenet2012"
TRAIN_TAR, VAL_TAR = "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"
VALIDATION_LABELS = "validation_labels.txt"  # one synset per line, for the validation images in sorted name order
KEEP_MODES = ("RGB", "L")  # JPEG colour modes stored unchanged; others (CMYK) are re-encoded as RGB
REENCODE_QUALITY = 100  # TFDS' png_to_jpeg / jpeg_cmyk_to_rgb
LOG_EVERY = 50_000  # images between progress lines


class ImagenetError(CnnjaxError):
    """The manual-download files are missing, damaged or inconsistent; the message names the file."""


Example = tuple[str, dict[str, Any]]  # (TFDS key, features)


def tfds_file(name: str) -> pathlib.Path:
    """A file TFDS ships with its imagenet2012 builder (labels.txt, validation_labels.txt)."""
    import tensorflow_datasets as tfds

    return pathlib.Path(tfds.core.tfds_path(f"datasets/imagenet2012/{name}"))


def synsets() -> tuple[str, ...]:
    """TFDS' 1000 synset ids in label order: label id i is synsets()[i]."""
    return tuple(tfds_file("labels.txt").read_text().split())


@dataclasses.dataclass(frozen=True)
class Archives:
    """The checked manual-download files: every name and label is known before hours of writing start."""

    train: pathlib.Path
    validation: pathlib.Path
    train_synsets: tuple[str, ...]  # inner tars, in archive order
    validation_labels: dict[str, str]  # validation file name -> synset


def validation_labels_file(manual_dir: str, path: str = "") -> pathlib.Path:
    """`path` if given, else validation_labels.txt in manual_dir if there is one, else TFDS' own (50,000)."""
    if path:
        return pathlib.Path(path).expanduser()
    local = pathlib.Path(manual_dir).expanduser() / VALIDATION_LABELS
    return local if local.is_file() else tfds_file(VALIDATION_LABELS)


def check_archives(manual_dir: str, validation_labels: str = "") -> Archives:
    """Reads the tars' member lists (headers only) and the labels; any inconsistency is a one-line error."""
    root = pathlib.Path(manual_dir).expanduser()
    if not root.is_dir():
        raise ImagenetError(f"manual_dir {root} is not a directory; give the directory holding {TRAIN_TAR} and "
                            f"{VAL_TAR}")
    train, validation = root / TRAIN_TAR, root / VAL_TAR
    for path in (train, validation):
        if not path.is_file():
            raise ImagenetError(f"{path} is missing; download it from https://image-net.org/download-images "
                                f"into {root}")
    known = set(synsets())
    train_synsets = tuple(_strip_tar(name) for name in _file_names(train))
    unknown = [s for s in train_synsets if s not in known]
    if unknown or not train_synsets:
        holds = f"{unknown[0]}.tar, an unknown synset" if unknown else "no synset tars"
        raise ImagenetError(f"{train} holds {holds} (expected n01440764.tar ... of TFDS' imagenet2012 labels); is it "
                            "the ILSVRC2012 train tar?")
    names = sorted(_file_names(validation))
    labels_path = validation_labels_file(manual_dir, validation_labels)
    log.info("validation labels: %s", labels_path)
    try:
        labels = labels_path.read_text().split()
    except OSError as err:
        raise ImagenetError(f"cannot read validation labels {labels_path} ({err.strerror or err})") from None
    if len(labels) != len(names):
        raise ImagenetError(f"{labels_path} has {len(labels)} validation labels but {validation} holds {len(names)} "
                            "images; give the labels file of this archive with --validation_labels")
    unknown = [s for s in labels if s not in known]
    if unknown:
        raise ImagenetError(f"{labels_path} names {unknown[0]}, not a synset of TFDS' imagenet2012 labels")
    return Archives(train, validation, train_synsets, dict(zip(names, labels)))


def _strip_tar(name: str) -> str:
    return name[:-len(".tar")] if name.endswith(".tar") else name


def _file_names(path: pathlib.Path) -> list[str]:
    """Base names of the tar's regular files, from the headers (seeking past the data)."""
    try:
        with tarfile.open(path, "r:") as archive:
            return [posixpath.basename(m.name) for m in archive.getmembers() if m.isfile()]
    except (tarfile.TarError, EOFError) as err:
        raise ImagenetError(f"{path} is not a readable tar ({err}); download it again") from None


def fix_image(file_name: str, data: bytes) -> bytes:
    """The image's bytes, unless it is not a JPEG in RGB or grayscale (CMYK, PNG): then an RGB JPEG of it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format == "JPEG" and image.mode in KEEP_MODES:
                return data
            log.info("re-encoding %s (%s %s) as an RGB JPEG", file_name, image.format, image.mode)
            out = io.BytesIO()
            image.convert("RGB").save(out, "JPEG", quality=REENCODE_QUALITY)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ImagenetError(f"unreadable image {file_name} ({type(err).__name__}); the archive is damaged, "
                            "download it again") from None


def _example(file_name: str, data: bytes, synset: str) -> Example:
    """The features of TFDS' builder, keyed like it by file name (so TFDS' shuffle gives the same order)."""
    return file_name, {"image": fix_image(file_name, data), "label": synset, "file_name": file_name}


def _files(archive: tarfile.TarFile, where: pathlib.Path | str) -> Iterator[tuple[str, bytes]]:
    """(base name, bytes) of the archive's regular files, read in order; a damaged archive is a one-line error."""
    try:
        for member in archive:
            if member.isfile():
                yield posixpath.basename(member.name), archive.extractfile(member).read()  # type: ignore[union-attr]
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ImagenetError(f"{where} is damaged ({type(err).__name__}: {err}); download it again") from None


def train_examples(archives: Archives) -> Iterator[Example]:
    """Streams the outer tar and each synset's inner tar; nothing is extracted to disk or held whole."""
    progress = _Progress("train")
    with tarfile.open(archives.train, "r:") as outer:
        for index, member in enumerate(m for m in outer if m.isfile()):
            synset = _strip_tar(posixpath.basename(member.name))
            where = f"{archives.train}:{member.name}"
            try:
                inner = tarfile.open(fileobj=outer.extractfile(member), mode="r|")
            except tarfile.TarError as err:
                raise ImagenetError(f"{where} is not a readable tar ({err}); download the archive again") from None
            with inner:
                for file_name, data in _files(inner, where):
                    yield _example(file_name, data, synset)
                    progress.step(f"synset {index + 1}/{len(archives.train_synsets)}")
    progress.done()


def validation_examples(archives: Archives) -> Iterator[Example]:
    progress = _Progress("validation")
    with tarfile.open(archives.validation, "r|") as archive:
        for file_name, data in _files(archive, archives.validation):
            yield _example(file_name, data, archives.validation_labels[file_name])
            progress.step()
    progress.done()


class _Progress:
    """A log line every LOG_EVERY images, with the rate (TFDS' own progress bar counts examples only)."""

    def __init__(self, split: str) -> None:
        self.split, self.count, self.start = split, 0, time.monotonic()

    def step(self, where: str = "") -> None:
        self.count += 1
        if self.count % LOG_EVERY == 0:
            self.log(where)

    def log(self, where: str = "") -> None:
        rate = self.count / max(time.monotonic() - self.start, 1e-9)
        log.info("%s: %d images read%s (%.0f images/s)", self.split, self.count, f", {where}" if where else "", rate)

    def done(self) -> None:
        self.log("all")


def builder(data_dir: str, archives: Archives | None = None) -> Any:
    """TFDS' imagenet2012 builder, reading examples from `archives` (needed only to write the dataset)."""
    from tensorflow_datasets.datasets.imagenet2012 import imagenet2012_dataset_builder as tfds_imagenet

    class LocalImagenet2012(tfds_writer.WritesWithoutTensorFlow, tfds_imagenet.Builder, skip_registration=True):
        name = NAME
        pkg_dir_path = tfds_imagenet.Builder._get_pkg_dir_path()  # TFDS' metadata (description, citation)

        def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[Example]]:  # noqa: ARG002 - no download
            if archives is None:
                raise ImagenetError("internal: the imagenet2012 builder was made without archives to read")
            return {"train": train_examples(archives), "validation": validation_examples(archives)}

    return LocalImagenet2012(data_dir=data_dir, file_format="array_record")


def prepare(manual_dir: str, data_dir: str = "", validation_labels: str = "", num_shards: int = 0) -> pathlib.Path:
    """Writes TFDS' imagenet2012 (train and validation) under data_dir from the manual-download tars and
    returns the dataset's directory; nothing is done when it is already prepared there."""
    data_dir = resolve_data_dir(data_dir)
    if pathlib.Path(data_dir).exists() and not pathlib.Path(data_dir).is_dir():
        raise ImagenetError(f"data_dir {data_dir} is a file, not a directory; give a directory with --data_dir")
    existing = builder(data_dir)
    if existing.is_prepared():
        log.info("%s is already prepared in %s; delete that directory to prepare it again", NAME, existing.data_dir)
        return pathlib.Path(existing.data_dir)
    archives = check_archives(manual_dir, validation_labels)
    log.info("preparing %s in %s from %s: %d synsets, %d validation images", NAME, data_dir, manual_dir,
             len(archives.train_synsets), len(archives.validation_labels))
    writer = builder(data_dir, archives)
    try:
        tfds_writer.write_prepared(writer, num_shards)
    except OSError as err:
        raise ImagenetError(f"cannot write {NAME} in {data_dir} ({err.strerror or err}); give a writable --data_dir "
                            "with room for about 150 GB") from None
    return pathlib.Path(writer.data_dir)
