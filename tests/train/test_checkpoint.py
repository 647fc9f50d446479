import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.train.checkpoint import CheckpointError, Checkpointer


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
