"""Training-loop options end to end: train.py in a subprocess on a small slice of real Fashion-MNIST,
checking what each option does to the run (checkpoints on disk, logged learning rates, logged losses),
not that the config echoes it back."""

from __future__ import annotations

import math

import pytest

from tests.train.test_train_script import metric_records, restore_params, run, train_cmd

pytestmark = pytest.mark.slow
SHORT = ["--config.num_train_examples=480", "--config.num_epochs=1"]  # 10 steps of 48


def train(workdir, *extra):
    result = run(train_cmd(workdir, *extra))
    assert result.returncode == 0, result.stderr[-3000:]
    return metric_records(workdir)


def test_checkpoint_every_steps_saves_at_those_steps_and_at_epoch_ends(tmp_path):
    from cnnjax.train.checkpoint import Checkpointer

    train(tmp_path, "--config.checkpoint_every_steps=7", "--config.keep_checkpoints=100")  # 2 epochs of 20
    with Checkpointer(tmp_path, read_only=True) as ckpt:
        assert ckpt.all_steps() == [7, 14, 20, 21, 28, 35, 40]
    assert int(restore_params(tmp_path, 7)["step"]) == 7  # a mid-epoch save holds the state of its step


def test_plateau_schedule_scales_the_learning_rate_after_an_epoch_without_improvement(tmp_path):
    lr, factor, min_delta = 1e-12, 0.5, 1e-4  # too small to move float32 weights: top-1 cannot improve
    records = train(tmp_path, "--config.num_train_examples=480", "--config.num_epochs=4",
                    "--config.schedule=plateau", "--config.warmup_epochs=0", f"--config.learning_rate={lr}",
                    "--config.plateau_patience=0", f"--config.lr_decay_factor={factor}",
                    f"--config.plateau_min_delta={min_delta}")
    # The plateau rule replayed on the logged validation top-1: the scale in force during each epoch.
    best, scale, expected, previous = -math.inf, 1.0, [], 0
    for v in (r for r in records if r["split"] == "validation"):
        expected += [(r["step"], lr * scale) for r in records
                     if r["split"] == "train" and previous < r["step"] <= v["step"]]
        if not v["top1"] > best + min_delta:  # patience 0: the first epoch without improvement reduces
            scale *= factor
        best, previous = max(best, v["top1"]), v["step"]
    logged = [(r["step"], r["lr"]) for r in records if r["split"] == "train"]
    assert [s for s, _ in logged] == [s for s, _ in expected] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert all(got == pytest.approx(want, rel=1e-6) for (_, got), (_, want) in zip(logged, expected)), logged
    assert scale <= factor**2, "top-1 improved every epoch: no reduction was exercised"


def test_augment_reaches_the_loop(tmp_path):
    every_step = "--config.log_every_steps=1"
    plain = train(tmp_path / "plain", *SHORT, every_step)
    flipped = train(tmp_path / "flip", *SHORT, every_step, "--config.augment=flip_lr")
    assert plain[0]["step"] == flipped[0]["step"] == 1
    assert plain[0]["loss"] != flipped[0]["loss"]  # the first batch already went through the op


def test_an_op_applied_with_probability_0_gives_the_plain_runs_batches():
    """The identity, drawing no key anything else reads: the run's uint8 batches are the plain run's, bit for bit.
    (The losses then computed from them are not compared: a program with the op is another XLA program, whose
    fusions may round the same arithmetic differently in the last bit.)"""
    import numpy as np

    from cnnjax.config import base_config
    from cnnjax.data.pipeline import replicate
    from cnnjax.train import experiment

    def batches(augment: str) -> list[np.ndarray]:
        config = base_config()
        config.model, config.num_train_examples, config.batch_size, config.augment = "mlp", 480, 48, augment
        exp = experiment.build(config)
        data, order = replicate(exp.data.train, exp.mesh), exp.batches.order(0)
        return [np.asarray(exp.batches(data, order, step)[0]) for step in range(3)]

    for got, want in zip(batches("flip_lr(prob=0.0)"), batches("")):
        np.testing.assert_array_equal(got, want)