"""The config's `augment` reaches the batches: every op changes the real TrainBatches' batch (fixed seed and
step) on real Fashion-MNIST, the streamed path applies the same device ops, and `cnnjax augment` draws them."""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest

from cnnjax import cli
from cnnjax.config import ConfigError, load_config
from cnnjax.data import augment
from cnnjax.data.augment import grid as augment_grid
from cnnjax.data.pipeline import DeviceSplit, normalize, train_batches
from cnnjax.train import experiment

ROOT = pathlib.Path(__file__).resolve().parents[2]
MLP = str(ROOT / "configs/fashion_mnist/mlp.py")
SMALL = ["num_train_examples=64", "batch_size=16", "validation_size=100"]
FAST_COMPILE = {"xla_backend_optimization_level": 0}  # what is tested is which pixels change, not speed
# One spec per op whose effect on a batch is certain (probabilities 1, ranges away from the identity).
REACHES = {
    "random_crop": "random_crop(padding=4)", "flip_lr": "flip_lr(prob=1.0)", "flip_ud": "flip_ud(prob=1.0)",
    "translate": "translate(max_fraction=0.2)", "rotate": "rotate(degrees=(20, 30))",
    "shear": "shear(degrees=(20, 30))", "zoom": "zoom(range=(1.2, 1.3))",
    "random_scale": "random_scale(range=(1.2, 1.3))", "random_resized_crop": "random_resized_crop(scale=(0.2, 0.5))",
    "channel_shift": "channel_shift(max_delta=60)", "random_erasing": "random_erasing(prob=1.0)",
    "randaugment": "randaugment(num_ops=2, magnitude=20)", "hsv_jitter": "hsv_jitter",
    "fancy_pca": "fancy_pca(std=0.5)",
}
RGB_ONLY = {"hsv_jitter", "fancy_pca"}  # run on the images stacked to 3 channels


def _batches(pipelines: list, data: list[DeviceSplit]) -> list[np.ndarray]:
    """Images of global step 3 through each real TrainBatches (jitted as the train step jits it; one compile)."""
    order, step = pipelines[0].order(0), jnp.asarray(3, jnp.int32)
    run = jax.jit(lambda ds, o, s: [b(d, o, s)[0] for b, d in zip(pipelines, ds)])
    return [np.asarray(x) for x in run.lower(data, order, step).compile(FAST_COMPILE)(data, order, step)]


def test_every_op_of_the_config_changes_the_training_batch():
    assert set(REACHES) == set(augment.op_names())  # a new op gets a line here
    config = load_config(MLP, SMALL)
    exp = experiment.build(config)  # augment="": the plain batches
    gray = exp.data.train.images
    labels = jnp.asarray(exp.data.train.labels, jnp.int32)
    datasets = {c: DeviceSplit(jnp.asarray(np.repeat(gray, c, -1)), labels) for c in (1, 3)}
    pipelines, data = [exp.batches, exp.batches], [datasets[1], datasets[3]]
    for name, spec in REACHES.items():
        channels = 3 if name in RGB_ONLY else 1
        with config.unlocked():
            config.augment = spec
        images = np.asarray(datasets[channels].images)
        batches = train_batches(config, len(images), images, channels)  # what experiment.build calls
        same_but_spec = dataclasses.replace(batches, augment_spec="", augment_context=exp.batches.augment_context)
        assert same_but_spec == exp.batches
        pipelines.append(batches)
        data.append(datasets[channels])
    plain = dict(zip((1, 3), _batches(pipelines[:2], data[:2])))
    outs = _batches(pipelines[2:], data[2:])
    for (name, spec), out in zip(REACHES.items(), outs):
        expected = plain[3 if name in RGB_ONLY else 1]
        assert out.dtype == np.uint8 and out.shape == expected.shape, name
        assert (out != expected).any(axis=(1, 2, 3)).mean() >= 0.5, f"{spec} left most of the batch unchanged"


def test_experiment_computes_fancy_pca_from_the_training_split_and_refuses_gray_data():
    with pytest.raises(augment.AugmentSpecError, match="fancy_pca needs RGB images, this dataset has 1 channel"):
        experiment.build(load_config(MLP, [*SMALL, "augment=fancy_pca"]))
    exp = experiment.build(load_config(MLP, [*SMALL, "augment=flip_lr"]))
    assert exp.batches.augment_spec == "flip_lr" and exp.batches.augment_context.channels == 1


STREAM = ["input_pipeline=stream", "stream.crop_size=28", "stream.resize_size=28", "stream.eval_split=test",
          "num_train_examples=64", "batch_size=16"]


def test_streamed_batches_get_the_device_ops_keyed_like_the_in_memory_pipeline():
    with pytest.raises(ConfigError, match="fancy_pca\\(eig='train'\\) needs the training images in memory"):
        load_config(MLP, [*STREAM, "augment=fancy_pca"])
    exp = experiment.build(load_config(MLP, [*STREAM, "augment=flip_ud(prob=0.5)|random_crop(padding=2)"]))
    images = np.random.default_rng(0).integers(0, 256, (16, 28, 28, 1), dtype=np.uint8)
    labels = np.arange(16, dtype=np.int32)
    step = jnp.asarray(5, jnp.int32)
    def both(x, y, s):  # the streamed program's batch, and the in-memory pipeline's augmentation normalised
        return exp.inputs.device_batch(exp, (x, y), s)[0], normalize(exp.batches.augmented(x, s), exp.inputs.mean,
                                                                       exp.inputs.std)

    got, want = jax.jit(both).lower(images, labels, step).compile(FAST_COMPILE)(images, labels, step)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, np.asarray(normalize(images, exp.inputs.mean, exp.inputs.std)))


def test_cnnjax_augment_writes_a_grid_of_originals_and_augmented_passes(tmp_path, capsys):
    out = tmp_path / "grid.png"
    argv = ["augment", "--config", MLP, "--config.num_train_examples=64", "--config.augment=flip_ud(prob=1.0)",
            "--out", str(out), "--rows", "3", "--cols", "4", "--scale", "1"]
    assert cli.main(argv) == 0
    grid = matplotlib.image.imread(out)
    pad = augment_grid.PAD
    assert grid.shape[:2] == (3 * 28 + 4 * pad, 4 * 28 + 5 * pad)
    size = 28 + pad
    tile = lambda r, c: grid[pad + r * size:(r + 1) * size, pad + c * size:(c + 1) * size]  # noqa: E731
    np.testing.assert_array_equal(tile(1, 2), tile(0, 2)[::-1])  # the pass is the original, flipped
    assert cli.main([*argv[:-6], "--out", str(tmp_path / "missing" / "g.png")]) == 2
    assert cli.main(["augment", "--config", str(tmp_path / "none.py"), "--out", str(out)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[0].startswith("cnnjax: error: cannot write") and "does not exist" in errors[0]
    assert errors[1].startswith("cnnjax: error: config file") and len(errors) == 2
