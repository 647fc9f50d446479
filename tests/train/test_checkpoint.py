import json
import re
import shutil
import subprocess
import sys
import threading
import time

import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.train.checkpoint import CheckpointError, Checkpointer, StepNotFoundError
from tests import fs_faults


def _state(value: float):
    return {"params": {"w": jnp.full((3,), value)}, "step": jnp.asarray(int(value), jnp.int32)}


def test_keeps_the_last_n_and_the_best(tmp_path):
    ckpt = Checkpointer(tmp_path, keep_last=2)
    for step, acc in [(10, 0.5), (20, 0.9), (30, 0.6), (40, None), (50, 0.7)]:
        ckpt.save(step, _state(step), {"val_top1": acc})
    ckpt.wait()
    assert ckpt.all_steps() == [20, 40, 50]
    assert ckpt.best_step() == 20 and ckpt.latest_step() == 50
    restored, meta = ckpt.restore(20, _state(0.0))
    assert np.array_equal(restored["params"]["w"], np.full(3, 20.0)) and meta["val_top1"] == 0.9
    ckpt.close()


def _steps_in(tmp_path):
    return sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())


def test_a_restart_keeps_the_best_checkpoint(tmp_path):
    """Orbax reloads existing steps without their metrics; the best must survive the next save anyway."""
    with Checkpointer(tmp_path, keep_last=2) as ckpt:
        for step, acc in [(1, 0.5), (2, 0.9), (3, 0.6), (4, 0.7)]:
            ckpt.save(step, _state(step), {"val_top1": acc})
        ckpt.wait()
        assert ckpt.all_steps() == [2, 3, 4] and ckpt.best_step() == 2
    with Checkpointer(tmp_path, keep_last=2) as ckpt:
        ckpt.save(5, _state(5), {"val_top1": 0.65})
        ckpt.wait()
        assert ckpt.all_steps() == [2, 4, 5] and ckpt.best_step() == 2
    assert _steps_in(tmp_path) == [2, 4, 5]
    with Checkpointer(tmp_path, read_only=True) as ckpt:
        restored, meta = ckpt.restore(2, _state(0.0))
    assert np.array_equal(restored["params"]["w"], np.full(3, 2.0)) and meta["val_top1"] == 0.9


def _kept_after_each_save(directory, saves, keep_last, restarts=frozenset()):
    """(steps on disk, best step) after each save; the Checkpointer is closed and reopened after `restarts`."""
    history, ckpt = [], Checkpointer(directory, keep_last=keep_last)
    for i, (step, acc) in enumerate(saves):
        ckpt.save(step, _state(step), {"val_top1": acc})
        ckpt.wait()
        history.append((ckpt.all_steps(), ckpt.best_step()))
        assert _steps_in(directory) == ckpt.all_steps()
        if i in restarts:
            ckpt.close()
            ckpt = Checkpointer(directory, keep_last=keep_last)
    ckpt.close()
    return history


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_retention_after_restarts_equals_retention_without(tmp_path, seed):
    """Random scores (ties, and saves without validation metrics) and random restart points."""
    rng = np.random.default_rng(seed)
    keep_last = int(rng.integers(1, 4))
    saves = [(10 * (i + 1), None if rng.random() < 0.3 else float(rng.choice([0.5, 0.6, 0.7, 0.8])))
             for i in range(14)]
    restarts = frozenset(int(i) for i in np.flatnonzero(rng.random(len(saves)) < 0.35))
    straight = _kept_after_each_save(tmp_path / "straight", saves, keep_last)
    restarted = _kept_after_each_save(tmp_path / "restarted", saves, keep_last, restarts)
    assert restarted == straight
    for n, (kept, best) in enumerate(straight, start=1):  # and both are the last N plus the best so far
        seen = saves[:n]
        scored = [(acc, step) for step, acc in seen if acc is not None]
        expected_best = max(scored)[1] if scored else seen[-1][0]  # ties: the later step
        assert best == expected_best
        assert kept == sorted({step for step, _ in seen[-keep_last:]} | {expected_best})


def test_a_read_only_checkpoint_directory_fails_at_once(tmp_path):
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, _state(1.0), {"val_top1": 0.1})
    with fs_faults.read_only(tmp_path / "checkpoints") as cause:
        with pytest.raises(CheckpointError) as failed:
            Checkpointer(tmp_path)
    assert str(failed.value).startswith(f"cannot write checkpoints in {tmp_path}/checkpoints: {cause} — ")
    with Checkpointer(tmp_path, read_only=True) as ckpt:
        assert ckpt.all_steps() == [1]
        ckpt.restore(1, _state(0.0))


_SAVE_WITHOUT_PROBE = """
import sys, jax.numpy as jnp
import cnnjax.train.checkpoint as c
from cnnjax.cli_support import main_guard
c.ensure_writable = lambda *args: None  # the save itself must fail at once, not only the start-up probe

def main(argv):
    with c.Checkpointer(argv[0]) as ckpt:
        ckpt.save(2, {"w": jnp.ones(3)}, {"val_top1": 0.5})
    return 0

sys.exit(main_guard(main, sys.argv[1:]))
"""


def test_a_save_into_a_read_only_directory_fails_at_once_and_the_process_exits(tmp_path):
    """It used to hang 300 s: Orbax's writer threads waited for a step directory that could not be created."""
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, _state(1.0), {"val_top1": 0.1})
    with fs_faults.read_only(tmp_path / "checkpoints") as cause:
        start = time.monotonic()
        result = subprocess.run([sys.executable, "-c", _SAVE_WITHOUT_PROBE, str(tmp_path)], capture_output=True,
                                text=True, timeout=120)
        seconds = time.monotonic() - start
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr[-3000:]
    assert result.stderr.startswith(f"error: saving checkpoint step 2 in {tmp_path}/checkpoints failed: {cause}; "
                                    "the earlier checkpoints are intact (steps 1)")
    assert seconds < 60, f"took {seconds:.0f} s"
    assert _steps_in(tmp_path) == [1] and not list((tmp_path / "checkpoints").glob("*tmp*"))


def test_a_full_disk_fails_the_save_and_keeps_the_earlier_checkpoint(tmp_path):
    """A 3 MB tmpfs: the first state (1.2 MB) fits, the second (2.4 MB) does not; Orbax fails in the background."""
    def big(seed: int, n: int = 1):  # random (incompressible) float32 arrays of 1.2 MB
        rng = np.random.default_rng(seed)
        return {f"w{i}": jnp.asarray(rng.random(300_000, dtype=np.float32)) for i in range(n)}

    with fs_faults.tmpfs(tmp_path / "w", "3m") as workdir:
        with Checkpointer(workdir) as ckpt:
            ckpt.save(1, big(1), {"val_top1": 0.1})
            ckpt.wait()
            ckpt.save(2, big(2, n=2), {"val_top1": 0.2})
            with pytest.raises(CheckpointError) as failed:
                ckpt.wait()
        assert str(failed.value).startswith(f"saving checkpoint step 2 in {workdir}/checkpoints failed: No space "
                                            "left on device; the earlier checkpoints are intact (steps 1)")
        assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["1"]  # the partial one is removed
        with Checkpointer(workdir, read_only=True) as ckpt:
            restored, _ = ckpt.restore(1, big(0))
        assert np.array_equal(restored["w0"], big(1)["w0"])


def test_restore_of_a_missing_step_lists_what_exists(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, _state(1.0), {"val_top1": 0.1})
    ckpt.wait()
    with pytest.raises(CheckpointError, match=r"no checkpoint for step 7 .*available: \[1\]"):
        ckpt.restore(7, _state(0.0))
    ckpt.close()


def test_incompatible_target_is_a_clear_error(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, _state(1.0), {"val_top1": 0.1})
    ckpt.wait()
    other = {"params": {"w": jnp.zeros((5,))}, "step": jnp.asarray(0, jnp.int32)}
    with pytest.raises(CheckpointError, match=r"checkpoints/1 is corrupt or does not match"):
        ckpt.restore(1, other)
    ckpt.close()


def test_reading_a_workdir_without_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoints in"):
        Checkpointer(tmp_path / "nothing", read_only=True)


def largest_state_file(step_dir):
    return max((p for p in (step_dir / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def test_a_flipped_byte_is_named_before_any_array_is_read(tmp_path):
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, _state(1.0), {"val_top1": 0.1})
    step_dir = tmp_path / "checkpoints" / "1"
    sums = json.loads((step_dir / "checksums.json").read_text())
    assert "meta/metadata" in sums and any(name.startswith("state/") for name in sums)
    victim = largest_state_file(step_dir)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    with Checkpointer(tmp_path, read_only=True) as ckpt:
        name = str(victim.relative_to(step_dir))
        with pytest.raises(CheckpointError, match=rf"checkpoints/1 is corrupt: {re.escape(name)} does not match"):
            ckpt.restore(1, _state(0.0))
        victim.unlink()
        with pytest.raises(CheckpointError, match=rf"{re.escape(name)} is missing"):
            ckpt.restore(1, _state(0.0))


def test_a_checkpoint_saved_before_its_checksums_still_restores(tmp_path):
    """A run killed between Orbax's commit and the checksums leaves a valid, unchecked checkpoint."""
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, _state(3.0), {"val_top1": 0.1})
    (tmp_path / "checkpoints" / "1" / "checksums.json").unlink()
    with Checkpointer(tmp_path, read_only=True) as ckpt:
        restored, _ = ckpt.restore(1, _state(0.0))
    assert np.array_equal(restored["params"]["w"], np.full(3, 3.0))


def _rotating_run(tmp_path):
    """A training run's Checkpointer keeping 1 step, and an evaluator's reader opened on its step 1."""
    writer = Checkpointer(tmp_path, keep_last=1)
    writer.save(1, _state(1.0), {"val_top1": None})
    writer.wait()
    return writer, Checkpointer(tmp_path, read_only=True)


def test_a_step_rotated_away_between_choosing_and_restoring_is_not_called_corrupt(tmp_path):
    writer, reader = _rotating_run(tmp_path)
    chosen = reader.best_step()
    assert chosen == 1
    writer.save(2, _state(2.0), {"val_top1": None})
    writer.wait()  # retention deletes step 1
    with pytest.raises(StepNotFoundError) as gone:
        reader.restore(chosen, _state(0.0))
    message = str(gone.value)
    assert "corrupt" not in message and "move it away" not in message
    assert "retention" in message and message.endswith("available: [2]") and gone.value.available == [2]
    assert reader.best_step() == 2  # chosen again from the disk, not from the reader's first listing
    restored, _ = reader.restore(2, _state(0.0))
    assert np.array_equal(restored["params"]["w"], np.full(3, 2.0))
    writer.close()
    reader.close()


def test_a_step_deleted_while_it_is_read_is_not_called_corrupt(tmp_path):
    """Retention deletes the files first, then the directory: a missing file is damage only if it stays so."""
    writer, reader = _rotating_run(tmp_path)
    step_dir = tmp_path / "checkpoints" / "1"
    largest_state_file(step_dir).unlink()
    deleter = threading.Timer(0.3, shutil.rmtree, [step_dir])
    deleter.start()
    with pytest.raises(StepNotFoundError, match=r"removed it while it was being read.*available: none") as gone:
        reader.restore(1, _state(0.0))
    assert "corrupt" not in str(gone.value)
    deleter.join()
    with pytest.raises(StepNotFoundError, match="no checkpoint for step 1 .*available: none"):
        reader.meta(1)
    writer.close()
    reader.close()
