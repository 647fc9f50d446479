"""ImageNet prepared without TensorFlow (cnnjax.data.imagenet / prepare) and read by cnnjax.data.records."""

import io
import os
import pathlib
import pickle
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from PIL import Image

from cnnjax.data import imagenet
from cnnjax.data.records import RecordSource, open_source
from cnnjax.data.sources import DatasetUnavailableError, dataset_meta
from tests.data import fake_imagenet as fake
from tests.data.fake_imagenet import fake_imagenet  # noqa: F401  (session fixture)

REPO = pathlib.Path(__file__).resolve().parents[2]


def _is_prepared(data_dir) -> bool:
    import tensorflow_datasets as tfds

    return tfds.builder("imagenet2012", data_dir=str(data_dir), file_format="array_record").is_prepared()


def _expected_examples(manual_dir) -> dict[str, list[tuple[bytes, int]]]:
    """(bytes, TFDS label id) of every archive image, by split, sorted: what the prepared dataset must hold."""
    ids = {synset: i for i, synset in enumerate(imagenet.synsets())}
    labels = dict(zip(sorted(f"ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(fake.NUM_VALIDATION)),
                      (pathlib.Path(manual_dir) / "validation_labels.txt").read_text().split()))
    found: dict[str, list[tuple[bytes, int]]] = {"train": [], "validation": []}
    for name, data in fake.archive_images(manual_dir).items():
        if name in labels:
            found["validation"].append((data, ids[labels[name]]))
        else:
            found["train"].append((data, ids[name.split("_")[0]]))
    return {split: sorted(examples) for split, examples in found.items()}


def test_prepared_fake_imagenet_is_tfds_imagenet2012(fake_imagenet):
    assert _is_prepared(fake_imagenet)
    meta = dataset_meta("imagenet2012", fake_imagenet)
    assert meta.num_classes == 1000 and meta.class_names == imagenet.synsets()
    assert meta.class_names[:fake.NUM_SYNSETS] == fake.fake_synsets() and meta.class_names[0] == "n01440764"
    assert meta.image_shape == (None, None, 3)
    assert meta.splits == {"train": fake.NUM_SYNSETS * fake.TRAIN_PER_SYNSET, "validation": fake.NUM_VALIDATION}
    version_dir = pathlib.Path(fake_imagenet) / "imagenet2012" / "5.1.0"
    for split in ("train", "validation"):
        assert len(list(version_dir.glob(f"imagenet2012-{split}.array_record-*-of-*"))) == fake.NUM_SHARDS


def test_open_source_gives_the_archives_jpeg_bytes_and_tfds_label_ids(fake_imagenet):
    expected = _expected_examples(pathlib.Path(fake_imagenet).parent / "manual")
    for split in ("train", "validation"):
        source = open_source("imagenet2012", split, fake_imagenet)
        examples = [source[i] for i in range(len(source))]
        assert all(isinstance(e["image"], bytes) and isinstance(e["label"], int) for e in examples)
        assert sorted((e["image"], e["label"]) for e in examples) == expected[split]
        assert source[-1] == examples[-1]
        with pytest.raises(IndexError):
            source[len(source)]


def test_record_source_pickles_as_its_name_and_reopens(fake_imagenet):
    source = open_source("imagenet2012", "validation", fake_imagenet)
    first = source[0]
    payload = pickle.dumps(source)
    assert len(payload) < 300  # (name, split, data_dir): no data, no open files
    reopened = pickle.loads(payload)
    assert isinstance(reopened, RecordSource) and reopened[0] == first and len(reopened) == fake.NUM_VALIDATION


def test_open_source_refuses_an_unknown_split(fake_imagenet):
    with pytest.raises(DatasetUnavailableError, match="has no split 'test'; it has train, validation"):
        open_source("imagenet2012", "test", fake_imagenet)


def test_open_source_of_fashion_mnist_gives_arrays(fashion_mnist):
    source = open_source("fashion_mnist", "test")
    example = source[3]
    assert example["image"].shape == (28, 28, 1) and example["image"].dtype == np.uint8
    assert len(source) == 10_000 and 0 <= example["label"] < 10


def test_an_unprepared_imagenet_says_how_to_prepare_it(tmp_path):
    with pytest.raises(DatasetUnavailableError, match=r"python -m cnnjax.data.prepare imagenet2012 --manual_dir"):
        dataset_meta("imagenet2012", str(tmp_path))


def test_the_cli_prepares_end_to_end(tmp_path):
    manual = fake.make_fake_imagenet(tmp_path)
    command = [sys.executable, "-m", "cnnjax.data.prepare", "imagenet2012", "--manual_dir", str(manual),
               "--data_dir", str(tmp_path / "tfds"), "--num_shards", "2"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"imagenet2012 is prepared in {tmp_path / 'tfds' / 'imagenet2012' / '5.1.0'}")
    assert _is_prepared(tmp_path / "tfds")
    assert len(list((tmp_path / "tfds" / "imagenet2012" / "5.1.0").glob("*-train.array_record-*"))) == 2
    (manual / imagenet.TRAIN_TAR).unlink()
    failed = subprocess.run(command[:-4] + ["--data_dir", str(tmp_path / "other")], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines()[-1] == (
        f"error: {manual / imagenet.TRAIN_TAR} is missing; download it from https://image-net.org/download-images "
        f"into {manual}")


def test_a_killed_or_failed_prepare_leaves_nothing_that_looks_prepared(tmp_path):
    manual, data_dir = fake.make_fake_imagenet(tmp_path), tmp_path / "tfds"
    # SIGKILL while the validation split is written (train is already written, in the staging directory).
    kill = ("import os, signal, sys; from cnnjax.data import imagenet; fix = imagenet.fix_image; "
            "imagenet.fix_image = lambda n, d: os.kill(os.getpid(), signal.SIGKILL) if n.startswith('ILSVRC') "
            "else fix(n, d); imagenet.prepare(sys.argv[1], sys.argv[2])")
    killed = subprocess.run([sys.executable, "-c", kill, str(manual), str(data_dir)], cwd=REPO, capture_output=True,
                            timeout=120)
    assert killed.returncode == -9
    assert not _is_prepared(data_dir) and list((data_dir / "imagenet2012").glob("incomplete.*"))
    # A damaged image: a one-line error naming it, and still nothing prepared.
    damaged = tmp_path / "damaged"
    shutil.copytree(manual, damaged)
    images = fake.archive_images(manual)
    _tar(damaged / imagenet.VAL_TAR, {name: b"not an image" if name.endswith("05.JPEG") else images[name]
                                      for name in sorted(images) if name.startswith("ILSVRC")})
    with pytest.raises(imagenet.ImagenetError, match="^unreadable image ILSVRC2012_val_00000005.JPEG") as err:
        imagenet.prepare(str(damaged), str(data_dir))
    assert "\n" not in str(err.value) and not _is_prepared(data_dir)
    # Preparing again starts over, and removes what the interrupted runs left.
    imagenet.prepare(str(manual), str(data_dir))
    assert _is_prepared(data_dir) and not list((data_dir / "imagenet2012").glob("incomplete.*"))
    assert len(open_source("imagenet2012", "train", str(data_dir))) == fake.NUM_SYNSETS * fake.TRAIN_PER_SYNSET


def _shards(data_dir) -> dict[str, bytes]:
    version_dir = pathlib.Path(data_dir) / "imagenet2012" / "5.1.0"
    return {path.name: path.read_bytes() for path in sorted(version_dir.glob("*.array_record-*"))}


def test_the_shards_equal_tfds_own_writer_even_when_a_split_spills_to_disk(fake_imagenet, tmp_path, monkeypatch):
    """ImageNet's splits exceed TFDS' 1 GB shuffle buffer, where TFDS' buckets need TensorFlow: ours do not,
    and give byte-identical shards. TFDS' own generation loop (in memory: no TensorFlow needed) is the reference."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import shuffle
    from tensorflow_datasets.datasets.imagenet2012 import imagenet2012_dataset_builder as tfds_imagenet

    manual = pathlib.Path(fake_imagenet).parent / "manual"
    archives = imagenet.check_archives(str(manual))

    class TfdsLoop(tfds_imagenet.Builder, skip_registration=True):
        name = "imagenet2012"
        pkg_dir_path = tfds_imagenet.Builder._get_pkg_dir_path()

        def _split_generators(self, dl_manager):
            return {"train": imagenet.train_examples(archives), "validation": imagenet.validation_examples(archives)}

    TfdsLoop(data_dir=str(tmp_path / "tfds_loop"), file_format="array_record").download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False, num_shards=fake.NUM_SHARDS))
    monkeypatch.setattr(shuffle, "MAX_MEM_BUFFER_SIZE", 10_000)  # the fake's train split is 64 kB: it spills
    imagenet.prepare(str(manual), str(tmp_path / "spilled"), num_shards=fake.NUM_SHARDS)
    reference = _shards(tmp_path / "tfds_loop")
    assert len(reference) == 2 * fake.NUM_SHARDS
    assert _shards(tmp_path / "spilled") == reference == _shards(fake_imagenet)
    assert not list((tmp_path / "spilled").rglob("bucket_*"))  # temporary buckets are deleted


def _tar(path: pathlib.Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _missing_train(manual: pathlib.Path) -> None:
    (manual / imagenet.TRAIN_TAR).unlink()


def _garbage_train(manual: pathlib.Path) -> None:
    (manual / imagenet.TRAIN_TAR).write_bytes(b"\x01" * 2000)


def _unknown_synset(manual: pathlib.Path) -> None:
    _tar(manual / imagenet.TRAIN_TAR, {"n01440764.tar": b"", "n99999999.tar": b""})


def _too_few_labels(manual: pathlib.Path) -> None:
    (manual / "validation_labels.txt").write_text("n01440764\n" * (fake.NUM_VALIDATION - 1))


def _unknown_label(manual: pathlib.Path) -> None:
    (manual / "validation_labels.txt").write_text("n00000001\n" * fake.NUM_VALIDATION)


@pytest.mark.parametrize("damage, message", [
    (_missing_train, r"ILSVRC2012_img_train.tar is missing; download it from https://image-net.org"),
    (_garbage_train, r"ILSVRC2012_img_train.tar is not a readable tar \(.*\); download it again"),
    (_unknown_synset, r"holds n99999999.tar, an unknown synset .*is it the ILSVRC2012 train tar\?"),
    (_too_few_labels, r"has 9 validation labels but .*ILSVRC2012_img_val.tar holds 10 images; give the labels"),
    (_unknown_label, r"names n00000001, not a synset of TFDS' imagenet2012 labels"),
])
def test_bad_manual_downloads_are_one_line_errors(tmp_path, damage, message):
    manual = fake.make_fake_imagenet(tmp_path)
    damage(manual)
    with pytest.raises(imagenet.ImagenetError, match=message) as err:
        imagenet.prepare(str(manual), str(tmp_path / "tfds"))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "tfds" / "imagenet2012").exists()  # checked before anything is written


def test_a_missing_manual_dir_is_a_one_line_error(tmp_path):
    with pytest.raises(imagenet.ImagenetError, match=r"manual_dir .*absent is not a directory; give the directory"):
        imagenet.prepare(str(tmp_path / "absent"), str(tmp_path / "tfds"))


def _encoded(mode: str, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (12, 9), {"RGB": (200, 30, 60), "L": 90, "CMYK": (10, 200, 30, 0)}[mode]).save(out, fmt)
    return out.getvalue()


def test_cmyk_and_png_images_become_rgb_jpegs_others_stay_byte_identical():
    for mode in ("RGB", "L"):
        assert imagenet.fix_image("x.JPEG", _encoded(mode, "JPEG")) == _encoded(mode, "JPEG")
    for mode, fmt in (("CMYK", "JPEG"), ("RGB", "PNG")):
        fixed = Image.open(io.BytesIO(imagenet.fix_image("x.JPEG", _encoded(mode, fmt))))
        assert (fixed.format, fixed.mode, fixed.size) == ("JPEG", "RGB", (12, 9))
    with pytest.raises(imagenet.ImagenetError, match="unreadable image n1_2.JPEG"):
        imagenet.fix_image("n1_2.JPEG", b"garbage")


def test_the_fake_archive_is_reproducible(tmp_path):
    first, second = fake.make_fake_imagenet(tmp_path / "a"), fake.make_fake_imagenet(tmp_path / "b")
    for name in (imagenet.TRAIN_TAR, imagenet.VAL_TAR, "validation_labels.txt"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    sizes = {Image.open(io.BytesIO(d)).size for d in fake.archive_images(first).values()}
    assert len(sizes) > 10 and all(40 <= side <= 80 for size in sizes for side in size)
    assert os.path.getsize(first / imagenet.TRAIN_TAR) < 1_000_000
