"""A user's own images as `folder:/path` datasets (cnnjax.data.image_folder, through sources and records)."""

import io
import pathlib
import pickle

import numpy as np
import pytest
from PIL import Image

from cnnjax.data import image_folder
from cnnjax.data.records import open_source
from cnnjax.data.sources import DatasetUnavailableError, dataset_meta, load_split
from cnnjax.data.splits import load_datasets


def _write(path: pathlib.Path, size: tuple[int, int], value: int, mode: str = "RGB") -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = io.BytesIO()
    Image.new(mode, size, value if mode == "L" else (value, 255 - value, 7)).save(
        out, "PNG" if path.suffix.lower() == ".png" else "JPEG")
    path.write_bytes(out.getvalue())
    return out.getvalue()


def _folder(root: pathlib.Path, layout: dict[str, dict[str, int]], sizes=((30, 20),), mode: str = "RGB"
            ) -> dict[str, list[tuple[bytes, str]]]:
    """Writes root/<split dir>/<class>/<i>.jpg|.PNG (alternating, sizes cycling); returns (bytes, class) by dir."""
    written: dict[str, list[tuple[bytes, str]]] = {}
    for split_dir, classes in layout.items():
        for class_name, count in classes.items():
            for i in range(count):
                path = root / split_dir / class_name / f"{i}.{'jpg' if i % 2 else 'PNG'}"
                data = _write(path, sizes[i % len(sizes)], 40 * len(class_name) + i, mode)
                written.setdefault(split_dir, []).append((data, class_name))
    return written


def test_train_and_val_folders_give_sorted_class_ids_and_the_files_bytes(tmp_path):
    layout = {"train": {"zebra": 3, "ant": 2, "moth": 4}, "val": {"moth": 1, "ant": 2}}
    written = _folder(tmp_path, layout, sizes=((30, 20), (41, 33)))
    (tmp_path / "train" / "ant" / "notes.txt").write_text("not an image: ignored")
    name = f"folder:{tmp_path}"
    meta = dataset_meta(name)
    assert meta.class_names == ("ant", "moth", "zebra") and meta.num_classes == 3
    assert meta.splits == {"train": 9, "validation": 3} and meta.image_shape == (None, None, 3)
    for split, split_dir in (("train", "train"), ("validation", "val")):
        source = open_source(name, split)
        got = sorted((source[i]["image"], source[i]["label"]) for i in range(len(source)))
        assert got == sorted((data, meta.class_names.index(c)) for data, c in written[split_dir])
    reopened = pickle.loads(pickle.dumps(open_source(name, "validation")))
    assert reopened[0]["label"] == 0 and len(pickle.dumps(reopened)) < 300


def test_variable_size_images_need_the_streaming_pipeline(tmp_path):
    _folder(tmp_path, {"train": {"a": 2}}, sizes=((30, 20), (20, 30)))
    with pytest.raises(DatasetUnavailableError, match=r"images of different sizes; .*--config.input_pipeline=stream"):
        load_split(f"folder:{tmp_path}", "train")


def test_a_train_only_folder_of_one_size_loads_in_memory_with_a_carved_validation(tmp_path):
    _folder(tmp_path, {"train": {"b": 5, "a": 5}}, mode="L")
    name = f"folder:{tmp_path}"
    meta = dataset_meta(name)
    assert meta.image_shape == (20, 30, 1) and meta.splits == {"train": 10}
    split = load_split(name, "train")
    assert split.images.shape == (10, 20, 30, 1) and split.images.dtype == np.uint8
    assert split.labels.tolist() == [0] * 5 + [1] * 5
    assert split.images[0, 0, 0, 0] == 40 and split.images[5, 0, 0, 0] == 40  # class "a" 0.PNG, class "b" 0.PNG
    data = load_datasets(name, validation_size=3, with_test=False)
    assert len(data.train) == 7 and len(data.validation) == 3 and data.meta.num_classes == 2
    with pytest.raises(DatasetUnavailableError, match=r"has no split 'validation' \(no .*val/\); it has train"):
        open_source(name, "validation")


def test_rgb_and_grayscale_mixed_decode_as_rgb(tmp_path):
    _folder(tmp_path, {"train": {"gray": 2}}, mode="L")
    _folder(tmp_path, {"train": {"rgb": 2}})
    split = load_split(f"folder:{tmp_path}", "train")
    assert split.images.shape == (4, 20, 30, 3)
    assert split.images[0, 0, 0].tolist() == [160, 160, 160]


def _empty_train(root: pathlib.Path) -> None:
    (root / "train").mkdir(parents=True)


def _no_train(root: pathlib.Path) -> None:
    _folder(root, {"val": {"a": 1}})


def _empty_class(root: pathlib.Path) -> None:
    _folder(root, {"train": {"a": 1}})
    (root / "train" / "b").mkdir()


def _unreadable(root: pathlib.Path) -> None:
    _folder(root, {"train": {"a": 1}})
    (root / "train" / "a" / "broken.jpg").write_bytes(b"not a jpeg")


def _unknown_val_class(root: pathlib.Path) -> None:
    _folder(root, {"train": {"a": 1}, "val": {"b": 1}})


@pytest.mark.parametrize("make, message", [
    (None, r"folder dataset root .*absent does not exist; give folder:/path/to/root"),
    (_no_train, r"has no train/ directory; put the training images in train/<class>/\*.jpg"),
    (_empty_train, r"train has no class folders; put each class's images in"),
    (_empty_class, r"class folder .*train/b has no .jpg/.jpeg/.png images; add some or remove it"),
    (_unreadable, r"unreadable image .*train/a/broken.jpg \(UnidentifiedImageError\); remove or replace it"),
    (_unknown_val_class, r"val/b is not a class of .*train \(classes are train/'s folders\)"),
])
def test_folder_errors_are_one_line_and_name_the_path(tmp_path, make, message):
    root = tmp_path / "absent"
    if make is not None:
        make(root)
    with pytest.raises(image_folder.ImageFolderError, match=message) as err:
        dataset_meta(f"folder:{root}")
    assert "\n" not in str(err.value)


def test_a_folder_name_without_a_path_is_an_error():
    with pytest.raises(image_folder.ImageFolderError, match="names no directory; use folder:/path/to/root"):
        dataset_meta("folder:")
