"""Preprocessing end to end: a tiny in-process run with preprocess=zca on real Fashion-MNIST stores its statistics
in the workdir; the training batches, eval.py's path and the ensemble's member inference all use exactly them
(a stored file altered after training is what evaluation then applies), and a workdir without the file (an
older run) still evaluates by deriving them again; a resumed run keeps the statistics it stored."""

from __future__ import annotations

import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import sharding
from cnnjax.config import base_config
from cnnjax.data import preprocess
from cnnjax.data.sources import Split
from cnnjax.data.splits import load_for_config
from cnnjax.ensemble import predictions
from cnnjax.ensemble.members import Member
from cnnjax.evaluate.exact import predict
from cnnjax.evaluate.restore import abstract_variables, restore_variables
from cnnjax.evaluate.run import evaluate_workdir
from cnnjax.metrics_log import read_metrics
from cnnjax.train import experiment, run_info, run_statistics
from tests.train.tiny_runs import train_run
from cnnjax.train.checkpoint import open_read_only

TINY = {"model": "mlp", "num_train_examples": 512, "validation_size": 256, "batch_size": 128,
        "eval_batch_size": 1000, "progress_bar": False, "log_every_steps": 1, "num_epochs": 1}


def _train(workdir: pathlib.Path, **kw) -> pathlib.Path:
    return train_run(workdir, {**TINY, **kw})


@pytest.fixture(scope="module")
def zca_run(tmp_path_factory) -> pathlib.Path:
    return _train(tmp_path_factory.mktemp("zca"), preprocess="zca")


def _expected_logits(workdir: pathlib.Path, stats: preprocess.Statistics, split: str = "validation") -> np.ndarray:
    """The best checkpoint applied to `stats`' transform of the split's images, outside every pipeline."""
    config = run_info.load_config(workdir)
    data = load_for_config(config, with_test=False, resample=False)
    net = experiment.build_model(config, data.meta.num_classes, data.meta.image_shape)
    with open_read_only(workdir) as ckpt:
        target = abstract_variables(net, data.meta.image_shape, sharding.make_mesh())
        variables, _ = restore_variables(ckpt, ckpt.best_step(), target)
    images = jnp.asarray(data.split(split).images)
    return np.asarray(predict(net, variables, preprocess.apply(stats, images)))


def _bound(logits: np.ndarray) -> float:
    """Float32 rounding of two evaluations batched differently: the ZCA product and the MLP's first layer are
    each a 784-long reduction (784 x 2^-24 relative), times 4 for the layers after them, at the logit scale."""
    return 2 * 4 * 784 * 2.0 ** -24 * float(np.abs(logits).max())


def _eval_logits(workdir: pathlib.Path, out: pathlib.Path) -> tuple[dict, np.ndarray]:
    result = evaluate_workdir(workdir, split="validation", out=out)
    return result, np.load(result["logits_npy"])


@pytest.mark.slow
def test_training_stores_the_zca_statistics_and_its_batches_use_them(zca_run, tmp_path):
    config = run_info.load_config(zca_run)
    stored = run_statistics.stored(zca_run)
    train = load_for_config(config, with_test=False, resample=False).train
    assert stored.kind == "zca"
    np.testing.assert_array_equal(stored.matrix, preprocess.compute("zca", train.images).matrix)
    # the first step's loss depends only on the initial weights and the batch: zca's batch is not standardize's
    plain = _train(tmp_path / "plain")
    first = {name: next(r["loss"] for r in read_metrics(run) if r["split"] == "train")
             for name, run in (("zca", zca_run), ("plain", plain))}
    assert first["zca"] != first["plain"]
    assert run_statistics.stored(plain).kind == "standardize"


@pytest.mark.slow
def test_eval_and_ensemble_inference_use_the_statistics_stored_in_the_workdir(zca_run, tmp_path):
    stored = run_statistics.stored(zca_run)
    result, logits = _eval_logits(zca_run, tmp_path / "eval")
    expected = _expected_logits(zca_run, stored)
    assert np.abs(logits - expected).max() <= _bound(expected)
    validated = [r for r in read_metrics(zca_run) if r["split"] == "validation"][-1]
    assert result["loss"] == pytest.approx(validated["loss"], rel=1e-5)  # what training validated

    # Statistics altered after training: evaluation applies the stored file, not statistics of the data.
    altered = preprocess.Statistics("zca", stored.shift + 0.05, stored.scale, stored.matrix)
    preprocess.save(zca_run / run_statistics.FILE, altered, "altered")
    _, logits_altered = _eval_logits(zca_run, tmp_path / "eval_altered")
    expected_altered = _expected_logits(zca_run, altered)
    assert np.abs(logits_altered - expected_altered).max() <= _bound(expected_altered)
    assert np.abs(expected_altered - expected).max() > 100 * _bound(expected)  # the alteration is visible

    member = Member("zca", zca_run, result["step"])
    data = predictions.load_member_data([member, member], ("validation",))
    np.testing.assert_array_equal(data[0].stats.shift, altered.shift)
    members = predictions.member_predictions(data, ("validation",), use_cache=False).logits["validation"]
    assert np.abs(members[0] - expected_altered).max() <= _bound(expected_altered)

    # A workdir from before the stored file (or with a damaged one): derived again from its training examples.
    (zca_run / run_statistics.FILE).unlink()
    _, logits_old = _eval_logits(zca_run, tmp_path / "eval_old")
    assert np.abs(logits_old - expected).max() <= _bound(expected)


def test_a_resumed_run_keeps_its_stored_statistics_and_a_new_one_derives_and_stores_them(tmp_path):
    config = base_config()
    config.data_dir, config.preprocess = str(tmp_path / "data"), "pixel_mean"
    images = np.random.default_rng(0).integers(0, 256, (64, 6, 6, 1), dtype=np.uint8)
    train = Split(images, np.zeros(64, np.int32))
    workdir = tmp_path / "run"
    derived = run_statistics.for_training(config, workdir, train)  # a new run: derived, cached, stored
    np.testing.assert_array_equal(derived.shift, images.mean(0, dtype=np.float64) / 255)
    assert len(list((tmp_path / "data").rglob("pixel_mean-*.npz"))) == 1
    np.testing.assert_array_equal(run_statistics.stored(workdir).shift, derived.shift)
    kept = preprocess.Statistics("pixel_mean", derived.shift + 0.1, derived.scale)
    preprocess.save(workdir / run_statistics.FILE, kept, "resumed")
    # resuming, the stored statistics win over the (here different) training examples
    resumed = run_statistics.for_training(config, workdir, Split(images[:32], train.labels[:32]))
    np.testing.assert_array_equal(resumed.shift, kept.shift)
    (workdir / run_statistics.FILE).write_bytes(b"damaged")  # never trusted: derived again, and stored whole
    np.testing.assert_array_equal(run_statistics.for_training(config, workdir, train).shift, derived.shift)
    np.testing.assert_array_equal(run_statistics.stored(workdir).shift, derived.shift)
