"""eval of a `cnnjax convert` output: random torchvision twin -> convert -> eval with registry preprocessing."""

import jax
import numpy as np
import pytest

from cnnjax.convert.files import convert_file
from cnnjax.data.sources import load_split
from cnnjax.errors import CnnjaxError
from cnnjax.evaluate.exact import classification_metrics
from cnnjax.evaluate.run import evaluate_workdir
from cnnjax.evaluate.weights import preprocess
from cnnjax.models import model_info
from tests.convert.parity import randomize, torch
from tests.data.fake_imagenet import fake_imagenet  # noqa: F401 (a fixture)

torchvision = pytest.importorskip("torchvision")
MODEL, N = "squeezenet1_1", 12


@pytest.mark.torch
def test_converted_weights_score_like_torchvision_on_the_preprocessed_images(tmp_path):
    torch.manual_seed(0)
    twin = randomize(torchvision.models.squeezenet1_1())
    torch.save(twin.state_dict(), tmp_path / "w.pth")
    convert_file(MODEL, tmp_path / "w.pth", tmp_path / "converted")

    result = evaluate_workdir(tmp_path / "converted", "test", out=tmp_path / "out" / "r.json", batch_size=8,
                              model=MODEL, dataset="fashion_mnist", num_examples=N)

    split = load_split("fashion_mnist", "test")
    images = np.asarray(jax.jit(preprocess, static_argnums=1)(split.images[:N], model_info(MODEL)))
    assert images.shape == (N, 224, 224, 3)  # 28x28 grayscale -> resize 256, crop 224, RGB
    with torch.no_grad():
        want = twin(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
    got = np.load(result["logits_npy"])
    np.testing.assert_allclose(got, want, atol=1e-4 + 1e-5 * np.abs(want).max())
    expected = classification_metrics(want, split.labels[:N])
    assert result["num_examples"] == N and result["top1"] == expected["top1"]
    assert result["step"] == "converted" and result["preprocessing"]["resize"] == 256


def test_converted_weights_need_their_model_and_dataset(tmp_path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(CnnjaxError, match="neither a training workdir"):
        evaluate_workdir(tmp_path / "nothing", model=MODEL, dataset="fashion_mnist")


@pytest.mark.torch
def test_converted_imagenet_weights_are_scored_with_torchvisions_protocol_on_the_fake_archive(tmp_path, monkeypatch,
                                                                                            fake_imagenet):
    """The README's "Reproducing ImageNet results" path on the fake ILSVRC archive: torchvision weights ->
    `cnnjax convert` -> `eval.py --dataset imagenet2012 --split validation`. Each JPEG is decoded, resized
    (shorter side 256) and centre-cropped (224) on the host as torchvision's evaluation transform does, so
    the logits equal torchvision's own pipeline + model on the same files, to float32 rounding."""
    import io

    from PIL import Image

    from cnnjax.data.records import open_source

    monkeypatch.setenv("TFDS_DATA_DIR", fake_imagenet)  # as a user points TFDS at the prepared data
    torch.manual_seed(0)
    twin = randomize(torchvision.models.squeezenet1_1()).eval()
    torch.save(twin.state_dict(), tmp_path / "w.pth")
    convert_file(MODEL, tmp_path / "w.pth", tmp_path / "converted")
    result = evaluate_workdir(tmp_path / "converted", "validation", out=tmp_path / "r.json", batch_size=4,
                              model=MODEL, dataset="imagenet2012")

    source = open_source("imagenet2012", "validation", fake_imagenet)
    info = model_info(MODEL)
    transform = torchvision.transforms.Compose([
        torchvision.transforms.Resize(256), torchvision.transforms.CenterCrop(224),
        torchvision.transforms.ToTensor(), torchvision.transforms.Normalize(info.mean, info.std)])
    images = torch.stack([transform(Image.open(io.BytesIO(source[i]["image"])).convert("RGB"))
                          for i in range(len(source))])
    with torch.no_grad():
        want = twin(images).numpy()
    got = np.load(result["logits_npy"])
    assert result["num_examples"] == len(source) == 10
    np.testing.assert_allclose(got, want, atol=1e-4 + 1e-5 * np.abs(want).max())
    labels = np.asarray([source[i]["label"] for i in range(len(source))])
    assert result["top1"] == classification_metrics(want, labels)["top1"]
