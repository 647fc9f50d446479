"""train.py / eval.py end to end, in subprocesses, on real Fashion-MNIST (a small slice of it).

Covers resume after SIGKILL (bit-identical), SIGTERM and Ctrl-C (save, then exit), the workdir lock, NaN
stops, eval outputs, eval while training rotates checkpoints, and the one-line errors for bad input — with
nothing already saved lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import fs_faults
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


def eval_cmd(workdir, *extra):
    return [sys.executable, str(ROOT / "eval.py"), "--workdir", str(workdir), *extra]


def run(cmd, timeout=600, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw)


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
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == proc.pid  # still names the killed holder
    resumed = run(train_cmd(tmp_path))  # but the kernel released its lock: the new run takes it
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (tmp_path / ".lock").read_text() == ""
    assert_same_tree(restore_params(straight, 40), restore_params(tmp_path, 40))
    assert metric_records(straight) == metric_records(tmp_path)
    assert kept_and_best(tmp_path) == kept_and_best(straight)


def kept_and_best(workdir):
    """The checkpoint steps on disk and the best of them (the one eval.py picks)."""
    from cnnjax.train.checkpoint import Checkpointer

    with Checkpointer(workdir, read_only=True) as ckpt:
        return ckpt.all_steps(), ckpt.best_step()


def _stop_mid_run_then_resume(straight, workdir, sig, status) -> tuple[str, int]:
    """`sig` once the run has logged metrics: it exits with `status` having saved a step, and resuming it ends
    with the parameters of the uninterrupted run. Returns the stopped run's stderr and its saved step."""
    proc = subprocess.Popen(train_cmd(workdir), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (workdir / "metrics.jsonl").is_file() and (workdir / "metrics.jsonl").read_text().count("\n") >= 1, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == status, stderr[-3000:]
    from cnnjax.train.checkpoint import Checkpointer

    saved = Checkpointer(workdir, read_only=True).all_steps()
    assert saved and 0 < saved[-1] < 40
    resumed = run(train_cmd(workdir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_tree(restore_params(straight, 40), restore_params(workdir, 40))
    return stderr, saved[-1]


def test_sigterm_saves_a_checkpoint_then_exits(straight, tmp_path):
    _stop_mid_run_then_resume(straight, tmp_path, signal.SIGTERM, 143)


def test_ctrl_c_saves_a_checkpoint_then_exits_130(straight, tmp_path):
    stderr, saved = _stop_mid_run_then_resume(straight, tmp_path, signal.SIGINT, 130)
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"interrupted by Ctrl-C (SIGINT): saved step {saved} in {tmp_path}; resume with the "
                           "same command: python ")
    assert shlex.split(last.split("same command: ")[1])[1:] == train_cmd(tmp_path)[1:]


def test_ctrl_c_before_the_training_loop_or_during_eval_is_one_line(straight, tmp_path):
    proc = subprocess.Popen(train_cmd(tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (tmp_path / ".lock").is_file() and (tmp_path / ".lock").read_text(), proc)  # about to load data
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    assert stderr.strip().splitlines()[-1].startswith("interrupted by Ctrl-C (SIGINT); stopped without saving")
    assert not list((tmp_path / "checkpoints").glob("[0-9]*"))
    # The train split (55,000 images through keras_cnn) takes far longer than importing JAX, which happens
    # inside main(): once JAX's library is mapped, the interrupt lands in loading data or evaluating.
    proc = subprocess.Popen(eval_cmd(straight, "--split", "train"), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for(lambda: "libjax_common" in pathlib.Path(f"/proc/{proc.pid}/maps").read_text(), proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr[-3000:]
    assert stdout == "" and stderr.strip().splitlines() == ["interrupted by Ctrl-C (SIGINT); evaluation stopped"]


def test_a_second_trainer_on_a_running_workdir_is_refused(straight, tmp_path):
    first = subprocess.Popen(train_cmd(tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (tmp_path / "metrics.jsonl").is_file(), first)
    first.send_signal(signal.SIGSTOP)  # it keeps its lock, and the second one cannot miss it
    try:
        line = _one_line_error(second := run(train_cmd(tmp_path)))
    finally:
        first.send_signal(signal.SIGCONT)
    assert f"{tmp_path} is in use by another training run: pid {first.pid} on host {socket.gethostname()}" in line
    assert "compiled" not in second.stderr  # refused before loading the data
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-3000:]
    assert_same_tree(restore_params(straight, 40), restore_params(tmp_path, 40))
    assert metric_records(straight) == metric_records(tmp_path)


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
    # Per-class metrics of the same predictions: recall weighted by support is top-1; the table is printed.
    per_class = data["per_class"]
    assert data["tta"] == "none" and sum(per_class["support"]) == 10_000 and len(per_class["recall"]) == 10
    right = sum(r * n for r, n in zip(per_class["recall"], per_class["support"]))
    assert abs(right / 10_000 - data["top1"]) < 1e-9
    assert f"| {per_class['class_names'][0]}" in result.stdout and "precision" in result.stdout
    by_step = run([sys.executable, str(ROOT / "eval.py"), "--workdir", str(straight), "--step", "20",
                   "--split", "validation", "--out", str(tmp_path / "v.json"), "--tta", "flip"])
    assert by_step.returncode == 0, by_step.stderr[-3000:]
    flipped = json.loads((tmp_path / "v.json").read_text())
    assert flipped["num_examples"] == 500 and flipped["tta"] == "flip"
    # TTA logits are log mean probabilities (each row's logsumexp is 0); the model's raw logits are not.
    for logits_npy, tta in ((tmp_path / "result_logits.npy", False), (tmp_path / "v_logits.npy", True)):
        logits = np.load(logits_npy).astype(np.float64)
        top = logits.max(1)
        lse = top + np.log(np.exp(logits - top[:, None]).sum(1))
        assert (np.abs(lse).max() < 1e-5) == tta


def test_eval_refuses_outputs_that_would_clobber_the_run(straight, tmp_path):
    before = tree_digest(straight)
    for out, problem in [(straight / "run.json", "the training run's own run.json"),
                         (straight / "checkpoints" / "40" / "eval.json", "the training run's own checkpoints/"),
                         (tmp_path, "is a directory"), (straight / "run.json" / "eval.json", "cannot create the directory")]:
        line = _one_line_error(run(eval_cmd(straight, "--out", str(out))))
        assert line.startswith(f"error: --out {out}") and problem in line
    assert tree_digest(straight) == before and list(tmp_path.iterdir()) == []


def test_eval_while_training_rotates_checkpoints(tmp_path):
    """The run saves every step and keeps one, so the step an evaluation chooses is soon deleted."""
    from cnnjax.train.checkpoint import Checkpointer

    trainer = subprocess.Popen(train_cmd(tmp_path, "--config.validation_size=0", "--config.num_epochs=50",
                                         "--config.checkpoint_every_steps=1", "--config.keep_checkpoints=1"),
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (tmp_path / "checkpoints").is_dir() and Checkpointer(tmp_path, read_only=True).steps_on_disk(),
             trainer)
    steps, deadline = [], time.time() + 300
    while len(steps) < 3 and time.time() < deadline:
        result = run(eval_cmd(tmp_path, "--split", "train"))
        assert result.returncode == 0, result.stderr[-3000:]
        steps.append(int(re.search(r"checkpoint step +\| (\d+)", result.stdout)[1]))
    line = _one_line_error(run(eval_cmd(tmp_path, "--step", "1")))
    assert "corrupt" not in line and "checkpoint retention has removed it" in line and "available: [" in line
    assert trainer.poll() is None, "training ended before the evaluations did"
    trainer.send_signal(signal.SIGTERM)
    _, stderr = trainer.communicate(timeout=300)
    assert trainer.returncode == 143, stderr[-3000:]
    assert len(steps) == 3 and steps == sorted(steps) and steps[0] < steps[-1], steps


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
    records = metric_records(tmp_path)
    assert all(np.isfinite(r["loss"]) for r in records if "loss" in r)
    # The diagnosis names the cause in metrics.jsonl too (cnnjax.train.diagnosis: NaN -> learning rate too high).
    assert records[-1]["split"] == "diagnosis" and records[-1]["lr_too_high"] == 1.0


def _one_line_error(result) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ")
    return lines[-1]


def _single_line_error(result) -> str:
    """For errors found before any work: stderr is that one line and nothing else."""
    line = _one_line_error(result)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]
    return line


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


def validation_top1(workdir):
    return {r["step"]: r["top1"] for r in metric_records(workdir) if r["split"] == "validation"}


def test_extending_a_finished_run_keeps_its_best_checkpoint(tmp_path):
    """A finished run resumed with one more epoch keeps its best step (Orbax, reloading the steps without
    their metrics, used to delete it). The extra epoch runs at 100x the learning rate: it is not better."""
    mlp = ["--config.model=mlp", "--config.keep_checkpoints=1", "--config.schedule=step",
           "--config.lr_boundaries_epochs=(2,)", "--config.lr_decay_factor=100"]
    first = run(train_cmd(tmp_path, *mlp), timeout=120)
    assert first.returncode == 0, first.stderr[-3000:]
    kept, best = kept_and_best(tmp_path)
    assert best in kept and kept == sorted({40, best})
    best_params = restore_params(tmp_path, best)
    extended = run(train_cmd(tmp_path, *mlp, "--config.num_epochs=3"), timeout=120)
    assert extended.returncode == 0, extended.stderr[-3000:]
    scores = validation_top1(tmp_path)
    assert scores[60] < scores[best], "the extension epoch was meant to be worse"
    assert kept_and_best(tmp_path) == (sorted({60, best}), best)
    assert_same_tree(restore_params(tmp_path, best), best_params)


def test_a_read_only_checkpoints_directory_fails_before_training(straight, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(straight, workdir)
    before = tree_digest(workdir / "checkpoints")
    with fs_faults.read_only(workdir / "checkpoints") as cause:
        start = time.monotonic()
        result = run(train_cmd(workdir, "--config.num_epochs=3"), timeout=120)
        seconds = time.monotonic() - start
        line = _one_line_error(result)
        assert result.stderr.strip().splitlines() == [line]  # nothing else: no Orbax log, no traceback
        assert line.startswith(f"error: cannot write checkpoints in {workdir}/checkpoints: {cause} — ")
        assert seconds < 60, f"took {seconds:.0f} s"
        scored = run(eval_cmd(workdir, "--split", "validation"), timeout=120)  # the checkpoints still score
        assert scored.returncode == 0, scored.stderr[-3000:]
    assert tree_digest(workdir / "checkpoints") == before


@pytest.mark.parametrize("epochs", [4, 2])
def test_a_full_disk_mid_run_is_one_line_and_keeps_the_earlier_checkpoint(tmp_path, epochs):
    """A 3 MB tmpfs workdir: the MLP's first checkpoint (2.2 MB) fits, the second does not. With 4 epochs the
    failed background save stops the run at the next log step; with 2 it is found by the final wait."""
    with fs_faults.tmpfs(tmp_path / "small", "3m") as workdir:
        start = time.monotonic()
        result = run(train_cmd(workdir, "--config.model=mlp", f"--config.num_epochs={epochs}"), timeout=120)
        seconds = time.monotonic() - start
        line = _one_line_error(result)
        assert len(result.stderr.strip().splitlines()) <= 3 and "Traceback" not in result.stderr, result.stderr
        assert line.startswith(f"error: saving checkpoint step 40 in {workdir}/checkpoints failed: No space left "
                               "on device; the earlier checkpoints are intact (steps 20)")
        assert seconds < 90, f"took {seconds:.0f} s"
        if epochs == 4:  # stopped by the next log step, at the latest by the next save: not trained to step 80
            assert max(r["step"] for r in metric_records(workdir)) <= 60
        assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["20"]  # no partial left
        assert (workdir / "checkpoints" / "20" / "checksums.json").is_file()
        out = tmp_path / "v.json"  # checksums verify, it restores and scores
        scored = run(eval_cmd(workdir, "--split", "validation", "--out", str(out)), timeout=120)
        assert scored.returncode == 0, scored.stderr[-3000:]
        assert json.loads(out.read_text())["step"] == 20


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


def test_lowering_num_epochs_below_a_finished_run_is_refused(straight):
    before = tree_digest(straight)
    line = _single_line_error(run(train_cmd(straight, "--config.num_epochs=1")))
    assert "is already at step 40" in line and "num_epochs=1" in line
    assert tree_digest(straight) == before


def test_a_nonfinite_loss_before_any_checkpoint_says_none_was_kept(tmp_path):
    line = _one_line_error(run(train_cmd(tmp_path, "--config.optimizer=sgd", "--config.learning_rate=1e30")))
    assert "loss became NaN/Inf" in line and "No checkpoint had been saved yet" in line and "None" not in line


def test_default_eval_skips_a_damaged_old_checkpoint(straight, tmp_path):
    """A partly deleted checkpoint that is not the best is named in a warning; the intact best is scored."""
    from cnnjax.train.checkpoint import Checkpointer

    workdir = tmp_path / "copy"
    shutil.copytree(straight, workdir)
    with Checkpointer(workdir, read_only=True) as ckpt:
        best, steps = ckpt.best_step(), ckpt.all_steps()
    damaged = next(s for s in steps if s != best)
    (workdir / "checkpoints" / str(damaged) / "meta" / "metadata").unlink()
    result = run([sys.executable, str(ROOT / "eval.py"), "--workdir", str(workdir), "--out", str(tmp_path / "r.json")])
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "r.json").read_text())["step"] == best
    assert f"checkpoints/{damaged}" in result.stderr and "skipped a damaged checkpoint" in result.stderr


@pytest.mark.parametrize("text", ["{garbage", "[1]"])
def test_a_corrupt_run_record_is_one_line_for_train_and_eval(straight, tmp_path, text):
    workdir = tmp_path / "copy"
    shutil.copytree(straight, workdir)
    (workdir / "run.json").write_text(text)
    before = tree_digest(workdir)
    line = _single_line_error(run([sys.executable, str(ROOT / "eval.py"), "--workdir", str(workdir)]))
    assert "run.json is corrupt" in line
    line = _single_line_error(run(train_cmd(workdir, "--config.num_epochs=3")))
    assert "run.json is corrupt" in line
    assert tree_digest(workdir) == before
