"""A user's own images as a dataset: `config.dataset = "folder:/path/to/root"`.

The root holds one directory per split and one directory per class inside it, like ImageNet's layout:
`train/<class>/*.jpg|jpeg|png` (required), `val/<class>/...` (or `validation/`, the split `validation`) and
`test/<class>/...` (the split `test`), both optional: without them validation is carved from train by
`validation_size` as for any dataset. Class ids are the sorted class folder names of train/, so they do not
depend on the file system's listing order. Examples are ordered by (class, path).

The streaming pipeline reads the original file bytes (`FolderReader`); the in-memory pipeline decodes
them (`load_split`), which only works when every image has the same size.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np

from cnnjax.data.types import DatasetMeta, DatasetUnavailableError, Split

PREFIX = "folder:"
EXTENSIONS = (".jpg", ".jpeg", ".png")
SPLIT_DIRS = {"train": ("train",), "validation": ("val", "validation"), "test": ("test",)}
GRAY_MODES = ("1", "L")  # decoded with one channel when every image is one of these; else RGB


class ImageFolderError(DatasetUnavailableError):
    """A folder dataset whose layout or images cannot be used; the message names the path."""


def is_folder(name: str) -> bool:
    return name.startswith(PREFIX)


def root_of(name: str) -> pathlib.Path:
    path = name[len(PREFIX):].strip()
    if not path:
        raise ImageFolderError(f"dataset {name!r} names no directory; use folder:/path/to/root "
                               "(holding train/<class>/)")
    return pathlib.Path(path).expanduser()


@dataclasses.dataclass(frozen=True)
class FolderIndex:
    """The image files of each split and their class ids (listing only: no image is opened)."""

    root: pathlib.Path
    class_names: tuple[str, ...]
    files: dict[str, tuple[pathlib.Path, ...]]
    labels: dict[str, np.ndarray]


def scan(name: str) -> FolderIndex:
    root = root_of(name)
    if not root.is_dir():
        problem = "is not a directory" if root.exists() else "does not exist"
        raise ImageFolderError(f"folder dataset root {root} {problem}; give folder:/path/to/root where root holds "
                               "train/<class>/*.jpg")
    split_dirs = {}
    for split, dir_names in SPLIT_DIRS.items():
        present = [root / d for d in dir_names if (root / d).is_dir()]
        if present:
            split_dirs[split] = present[0]
    if "train" not in split_dirs:
        raise ImageFolderError(f"{root} has no train/ directory; put the training images in train/<class>/*.jpg")
    class_names = tuple(_class_dirs(split_dirs["train"]))
    if not class_names:
        raise ImageFolderError(f"{split_dirs['train']} has no class folders; put each class's images in "
                               f"{split_dirs['train']}/<class name>/")
    files, labels = {}, {}
    for split, split_dir in split_dirs.items():
        unknown = sorted(set(_class_dirs(split_dir)) - set(class_names))
        if unknown:
            raise ImageFolderError(f"{split_dir / unknown[0]} is not a class of {split_dirs['train']} (classes are "
                                   "train/'s folders); rename it or add it to train/")
        per_class = [(c, _images(split_dir / class_names[c])) for c in range(len(class_names))
                     if (split_dir / class_names[c]).is_dir()]
        files[split] = tuple(path for _, paths in per_class for path in paths)
        labels[split] = np.concatenate([np.full(len(paths), c, np.int32) for c, paths in per_class] or
                                       [np.zeros(0, np.int32)])
    return FolderIndex(root, class_names, files, labels)


def _class_dirs(split_dir: pathlib.Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir() and not entry.name.startswith("."))


def _images(class_dir: pathlib.Path) -> list[pathlib.Path]:
    """The class's image files, in sub-folders too, sorted; an empty class is an error (likely a wrong path)."""
    found = sorted(path for path in class_dir.rglob("*") if path.suffix.lower() in EXTENSIONS
                   and not path.name.startswith(".") and path.is_file())
    if not found:
        raise ImageFolderError(f"class folder {class_dir} has no {'/'.join(EXTENSIONS)} images; add some or remove it")
    return found


def _header(path: pathlib.Path) -> tuple[tuple[int, int], str]:
    """(width, height) and PIL mode from the file's header (nothing is decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size, image.mode
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ImageFolderError(f"unreadable image {path} ({type(err).__name__}); remove or replace it") from None


def _image_shape(found: FolderIndex) -> tuple[int | None, int | None, int]:
    """(H, W, C) when every image has one size, else (None, None, C); C is 1 when all images are grayscale.

    Reads every file's header (about 0.1 ms each): the in-memory pipeline and model shapes depend on it.
    """
    headers = [_header(path) for paths in found.files.values() for path in paths]
    sizes = {size for size, _ in headers}
    channels = 1 if all(mode in GRAY_MODES for _, mode in headers) else 3
    if len(sizes) == 1:
        (width, height), = sizes
        return height, width, channels
    return None, None, channels


def dataset_meta(name: str) -> DatasetMeta:
    found = scan(name)
    return DatasetMeta(name=name, num_classes=len(found.class_names), class_names=found.class_names,
                       image_shape=_image_shape(found),  # type: ignore[arg-type]  # None: variable size
                       splits={split: len(paths) for split, paths in found.files.items()})


def _check_split(found: FolderIndex, name: str, split: str) -> None:
    if split not in found.files:
        dirs = {"validation": "val/", "test": "test/"}.get(split, f"{split}/")
        raise ImageFolderError(f"{name} has no split {split!r} (no {found.root}/{dirs}); it has "
                               f"{', '.join(found.files)}")


def load_split(name: str, split: str) -> Split:
    """The split decoded to uint8 arrays: only for images of one size (others need the streaming pipeline)."""
    from PIL import Image

    found = scan(name)
    _check_split(found, name, split)
    height, width, channels = _image_shape(found)
    if height is None:
        raise ImageFolderError(f"{name} has images of different sizes; the in-memory pipeline needs one size: "
                               "use the streaming pipeline (--config.input_pipeline=stream)")
    images = np.empty((len(found.files[split]), height, width, channels), np.uint8)
    for i, path in enumerate(found.files[split]):
        with Image.open(path) as image:
            images[i] = np.asarray(image.convert("L" if channels == 1 else "RGB")).reshape(height, width, channels)
    return Split(images, found.labels[split].copy())


class FolderReader:
    """The original bytes of a split's files, with their class ids (the `RecordSource` of a folder)."""

    def __init__(self, name: str, split: str) -> None:
        found = scan(name)
        _check_split(found, name, split)
        self._files, self._labels = found.files[split], found.labels[split]

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, index: int) -> dict[str, object]:
        path = self._files[index]
        try:
            data = path.read_bytes()
        except OSError as err:
            raise ImageFolderError(f"unreadable image {path} ({err.strerror or err}); remove or replace it") from None
        return {"image": data, "label": int(self._labels[index])}
