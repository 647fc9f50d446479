"""train.py / eval.py end to end, in subprocesses, on real Fashion-MNIST (a small slice of it).

Covers resume after SIGKILL (bit-identical), SIGTERM (save, then exit), NaN stops, eval outputs, and the
one-line errors for bad input — with nothing already saved lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.train.test_checkpoint import largest_state_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs/fashion_mnist/keras_cnn.py")
# 960 training examples / 48 per batch = 20 steps per epoch; dropout makes the rng part of the state.
SMALL = ["--config.num_train_examples=960", "--config.batch_size=48", "--config.validation_size=500",
         "--config.eval_batch_size=256", "--config.log_every_steps=5", "--config.num_epochs=2",
         "--config.progress_bar=false"]
pytestmark = pytest.mark.slow


def train_cmd(workdir, *extra):
    return [sys.executable, str(ROOT / "train.py"), "--config", CONFIG, "--workdir", str(workdir), *SMALL, *extra]


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, **kw)


def restore_params(workdir, step):
    from cnnjax.train.checkpoint import Checkpointer

    ckpt = Checkpointer(workdir, read_only=True)
    path = ckpt.directory / str(step) / "state"
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as c:
        tree = c.restore(path)
    ckpt.close()
    return tree


def assert_same_tree(a, b):
    import jax

    la, lb = jax.tree_util.tree_flatten_with_path(a)[0], jax.tree_util.tree_flatten_with_path(b)[0]
    assert [p for p, _ in la] == [p for p, _ in lb]
    for (path, x), (_, y) in zip(la, lb):
        assert np.array_equal(np.asarray(x), np.asarray(y)), f"{jax.tree_util.keystr(path)} differs"


def metric_records(workdir):
    lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(l).items() if k != "img_per_s"} for l in lines]


def wait_for(predicate, proc, timeout=300):
    start = time.time()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.stderr.read()[-2000:]}")
        if time.time() - start > timeout:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.05)


def tree_digest(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted 2-epoch run."""
    workdir = tmp_path_factory.mktemp("straight")
    result = run(train_cmd(workdir))
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_outputs_of_a_run(straight):
    records = metric_records(straight)
    assert {"step", "epoch", "split", "loss", "top1"} <= set(records[0])
    validation = [r for r in records if r["split"] == "validation"]
    assert [r["step"] for r in validation] == [20, 40]
    assert all(r["num_examples"] == 500 for r in validation)
    assert validation[-1]["top1"] > 0.6
    assert {p.name for p in (straight / "plots").iterdir()} == {"loss.png", "accuracy.png", "learning_rate.png"}
    assert any((straight / "tensorboard").iterdir())
    info = json.loads((straight / "run.json").read_text())
    assert info["config"]["model"] == "keras_cnn" and info["packages"]["jax"]


def test_resume_after_sigkill_is_bit_identical(straight, tmp_path):
    proc = subprocess.Popen(train_cmd(tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (tmp_path / "checkpoints" / "20").is_dir(), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    from cnnjax.train.checkpoint import Checkpointer

    assert Checkpointer(tmp_path, read_only=True).latest_step() < 40, "killed too late to test resuming"
    resumed = run(train_cmd(tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_tree(restore_params(straight, 40), restore_params(tmp_path, 40))
    assert metric_records(straight) == metric_records(tmp_path)


def test_sigterm_saves_a_checkpoint_then_exits(straight, tmp_path):
    proc = subprocess.Popen(train_cmd(tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (tmp_path / "metrics.jsonl").is_file() and (tmp_path / "metrics.jsonl").read_text().count("\n") >= 1, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == 143
    from cnnjax.train.checkpoint import Checkpointer

    saved = Checkpointer(tmp_path, read_only=True).all_steps()
    assert saved and 0 < saved[-1] < 40
    resumed = run(train_cmd(tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_tree(restore_params(straight, 40), restore_params(tmp_path, 40))


def test_eval_writes_metrics_and_confusion_matrix(straight, tmp_path):
    out = tmp_path / "result.json"
    result = run([sys.executable, str(ROOT / "eval.py"), "--workdir", str(straight), "--split", "test",
                  "--out", str(out)])
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["num_examples"] == 10_000 and data["step"] == 40
    assert 0.6 < data["top1"] <= data["top5"] <= 1 and data["nll"] > 0
    assert (tmp_path / "result_confusion.png").stat().st_size > 1000
    assert "top-1" in result.stdout
    by_step = run([sys.executable, str(ROOT / "eval.py"), "--workdir", str(straight), "--step", "20",
                   "--split", "validation", "--out", str(tmp_path / "v.json")])
    assert by_step.returncode == 0, by_step.stderr[-3000:]
    assert json.loads((tmp_path / "v.json").read_text())["num_examples"] == 500


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    # SGD is stable in epoch 1; the step schedule then multiplies the learning rate by 1e7.
    result = run(train_cmd(tmp_path, "--config.optimizer=sgd", "--config.learning_rate=0.01",
                           "--config.schedule=step", "--config.lr_boundaries_epochs=(1,)",
                           "--config.lr_decay_factor=1e7"))
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: loss became NaN/Inf at training step") and "step 20" in error
    from cnnjax.train.checkpoint import Checkpointer

    assert Checkpointer(tmp_path, read_only=True).all_steps() == [20]
    assert all(np.isfinite(r["loss"]) for r in metric_records(tmp_path))


def _one_line_error(result) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ")
    return lines[-1]


def test_bad_input_is_one_clear_line(straight, tmp_path):
    line = _one_line_error(run(train_cmd(tmp_path, "--config.num_epoch=3")))
    assert "unknown config key 'num_epoch'" in line and "num_epochs" in line
    line = _one_line_error(run(train_cmd(tmp_path, "--config.model=resnet_20")))
    assert "unknown model 'resnet_20'" in line and "resnet20" in line
    env = {**os.environ, "CNNJAX_FASHION_MNIST_DIR": str(tmp_path / "none"), "TFDS_DATA_DIR": str(tmp_path / "tfds")}
    line = _one_line_error(run(train_cmd(tmp_path / "w"), env=env))
    assert "apt-get install dataset-fashion-mnist" in line
    before = tree_digest(straight)
    line = _one_line_error(run(train_cmd(straight, "--config.model=mlp")))
    assert "another config" in line and "keras_cnn" in line
    assert tree_digest(straight) == before


def test_corrupt_checkpoint_is_named_and_left_untouched(straight, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(straight, workdir)
    victim = largest_state_file(workdir / "checkpoints" / "40")
    victim.write_bytes(b"\x00garbage" * 10)
    before = tree_digest(workdir)
    line = _one_line_error(run([sys.executable, str(ROOT / "eval.py"), "--workdir", str(workdir), "--step", "40"]))
    assert "checkpoints/40" in line and "corrupt" in line
    line = _one_line_error(run(train_cmd(workdir, "--config.num_epochs=3")))
    assert "checkpoints/40" in line
    assert tree_digest(workdir) == before
