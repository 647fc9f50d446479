"""The streaming input pipeline in the training loop: resumed runs see exactly the uninterrupted run's examples,
2 processes train like 1 process on 2 devices, and train.py runs end to end on a (fake) ImageNet."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tests.data.fake_imagenet import fake_imagenet  # noqa: F401  (session fixture)
from tests.train.test_distributed import _env, _free_port, _recorded_ids as _ids
from tests.train.test_train_script import ROOT, metric_records

MLP = str(ROOT / "configs/fashion_mnist/mlp.py")
# Fashion-MNIST through the streaming path: 28x28 crops of the 28x28 arrays, 20 steps of 48 per epoch.
STREAM = ["input_pipeline=stream", "stream.crop_size=28", "stream.resize_size=28", "stream.eval_split=test",
          "stream.max_eval_examples=100", "num_train_examples=960", "batch_size=48", "progress_bar=false"]


def _params(state) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state.params))]


def test_resumed_run_sees_the_examples_of_an_uninterrupted_one(tmp_path, monkeypatch):
    """SIGTERM at step 13 of 40 (mid-epoch): the run saves step 14 and stops; resuming reads on from there."""
    from cnnjax.config import load_config
    from cnnjax.data.stream.feed import TrainFeed
    from cnnjax.train.loop import train_and_evaluate

    def config(name):
        return load_config(MLP, [*STREAM, "num_epochs=2", f"stream.record_ids_to={tmp_path / name}"])

    whole = train_and_evaluate(config("whole"), tmp_path / "whole")
    next_batch = TrainFeed.next

    def interrupted_next(feed):
        if feed.step == 13:
            os.kill(os.getpid(), signal.SIGTERM)
        return next_batch(feed)

    monkeypatch.setattr(TrainFeed, "next", interrupted_next)
    stopped = train_and_evaluate(config("parts"), tmp_path / "parts")
    assert stopped.preempted and stopped.last_step == 14
    monkeypatch.setattr(TrainFeed, "next", next_batch)
    meta = json.loads((tmp_path / "parts/checkpoints/14/meta/metadata").read_text())
    assert meta["input"]["epoch"] == 0 and meta["input"]["position"] == 14
    resumed = train_and_evaluate(config("parts"), tmp_path / "parts")
    assert not resumed.preempted and resumed.last_step == 40

    want, got = _ids(tmp_path / "whole.0"), _ids(tmp_path / "parts.0")
    assert [row[0] for row in got] == list(range(40))  # each step once: nothing repeated or skipped
    assert got == want
    for a, b in zip(_params(resumed.state), _params(whole.state)):
        np.testing.assert_array_equal(a, b)


def _train_cmd(workdir, *extra) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), "--config", MLP, "--workdir", str(workdir),
            *[f"--config.{o}" for o in STREAM], "--config.num_epochs=1", "--config.stream.worker_count=1", *extra]


@pytest.mark.slow
def test_two_processes_stream_like_one_process_on_two_devices(tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    procs = [subprocess.Popen(_train_cmd(tmp_path / "two", "--config.num_train_examples=192", "--distributed",
                                         "--coordinator_address", address, "--num_processes", "2",
                                         "--process_id", str(i), f"--config.stream.record_ids_to={tmp_path / 'ids'}"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=_env(1),
                              start_new_session=True) for i in range(2)]
    single = subprocess.run(_train_cmd(tmp_path / "one", "--config.num_train_examples=192"), capture_output=True,
                            text=True, timeout=300, cwd=ROOT, env=_env(2))
    deadline = time.monotonic() + 300
    outputs = []
    for p in procs:
        try:
            outputs.append(p.communicate(timeout=max(1.0, deadline - time.monotonic()))[0])
        except subprocess.TimeoutExpired:
            p.kill()
            outputs.append(p.communicate()[0])
    assert all(p.returncode == 0 for p in procs), "\n".join(o[-2000:] for o in outputs)
    assert single.returncode == 0, single.stderr[-3000:]
    # Each process read only its half of each of the 4 global batches, and the halves are disjoint.
    halves = [_ids(tmp_path / f"ids.{i}") for i in range(2)]
    assert [len(h) for h in halves] == [4, 4] and all(len(row) == 1 + 24 for h in halves for row in h)
    for a, b in zip(*halves):
        assert not set(a[1:]) & set(b[1:])
    validation = [r for r in metric_records(tmp_path / "two") if r["split"] == "validation"]
    assert [r["num_examples"] for r in validation] == [100]
    assert validation == [r for r in metric_records(tmp_path / "one") if r["split"] == "validation"]
    from cnnjax.train import experiment, run_info
    from cnnjax.train.checkpoint import Checkpointer

    states = []
    for run in ("two", "one"):
        exp = experiment.build(run_info.load_config(tmp_path / run))
        with Checkpointer(tmp_path / run, read_only=True) as ckpt:
            states.append(ckpt.restore(4, exp.init_state())[0])
    for a, b in zip(_params(states[0]), _params(states[1])):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_train_py_streams_fake_imagenet(tmp_path, fake_imagenet):  # noqa: F811
    """2 steps of 8 random-resized 32x32 crops of the fake ImageNet's JPEGs, then exact validation of its 10
    images with 10-crop evaluation (one padded batch of 8 + 2)."""
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", MLP, "--workdir", str(tmp_path / "run"),
           "--config.dataset=imagenet2012", f"--config.data_dir={fake_imagenet}", "--config.input_pipeline=stream",
           "--config.stream.crop_size=32", "--config.stream.resize_size=36", "--config.stream.ten_crop=true",
           "--config.num_train_examples=16", "--config.batch_size=8", "--config.eval_batch_size=8",
           "--config.num_epochs=1", "--config.progress_bar=false"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=_env(2))
    assert result.returncode == 0, result.stderr[-3000:]
    records = metric_records(tmp_path / "run")
    validation = [r for r in records if r["split"] == "validation"]
    assert [(r["step"], r["num_examples"]) for r in validation] == [(2, 10)]
    assert np.isfinite([r["loss"] for r in records if r["split"] in ("train", "validation")]).all()
    # eval.py scores the streamed workdir the way validation did: the same examples, crops and statistics.
    evaluate = [sys.executable, str(ROOT / "eval.py"), "--workdir", str(tmp_path / "run"), "--split", "validation",
                "--out", str(tmp_path / "eval.json")]
    result = subprocess.run(evaluate, capture_output=True, text=True, timeout=300, cwd=ROOT, env=_env(2))
    assert result.returncode == 0, result.stderr[-3000:]
    scored = json.loads((tmp_path / "eval.json").read_text())
    assert scored["num_examples"] == 10 and scored["step"] == 2
    assert scored["top1"] == validation[0]["top1"] and scored["nll"] == pytest.approx(validation[0]["loss"])
