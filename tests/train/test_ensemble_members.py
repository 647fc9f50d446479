"""Producing ensemble members: the cyclic cosine schedule and its snapshots (kept by retention, across a
resume too), and `train.py --seeds` (member workdirs, seeds, members.json). Tiny in-process runs on a slice
of real Fashion-MNIST: an MLP on 512 examples, 4 steps an epoch."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pathlib
import signal
import threading

import jax.numpy as jnp
import pytest

from cnnjax.config import base_config
from cnnjax.errors import CnnjaxError
from cnnjax.train import loop, seeds
from cnnjax.train.checkpoint import SNAPSHOT, Checkpointer, retained_steps
from cnnjax.train.optim import make_schedule

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY = {"model": "mlp", "num_train_examples": 512, "validation_size": 256, "batch_size": 128,
        "eval_batch_size": 256, "progress_bar": False, "log_every_steps": 4}


def _config(**kw):
    c = base_config()
    for k, v in {**TINY, **kw}.items():
        c[k] = v
    return c


def test_cyclic_cosine_restarts_at_each_cycle_and_decays_to_the_floor():
    c = _config(schedule="cyclic_cosine", num_cycles=3, num_epochs=6, learning_rate=1.0, lr_min_factor=0.1)
    s = make_schedule(c, 10)  # cycles of 20 steps
    for start in (0, 20, 40):
        assert float(s(start)) == pytest.approx(1.0)
        assert float(s(start + 10)) == pytest.approx(0.55)
        assert float(s(start + 19)) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 19 / 20)), rel=1e-5)
    assert float(s(60)) == pytest.approx(0.1)
    c.warmup_epochs = 1.0  # the first cycle only: linear to the rate in 10 steps, then cosine over 10
    s = make_schedule(c, 10)
    assert [float(s(t)) for t in (0, 5, 10, 15, 20, 30)] == pytest.approx([0.0, 0.5, 1.0, 0.55, 1.0, 0.55])


def _state(step: int):
    return {"w": jnp.full((2,), float(step))}


def test_retention_keeps_snapshots_also_after_a_restart(tmp_path):
    saves = [(1, 0.9, False), (2, 0.5, True), (3, 0.6, False), (4, 0.4, True), (5, 0.3, False)]
    ckpt = Checkpointer(tmp_path, keep_last=1)
    for step, acc, snapshot in saves:
        ckpt.save(step, _state(step), {"val_top1": acc, SNAPSHOT: snapshot})
        ckpt.wait()
        if step == 3:  # a restart: what is kept is read from the metas on disk
            ckpt.close()
            ckpt = Checkpointer(tmp_path, keep_last=1)
    assert ckpt.all_steps() == [1, 2, 4, 5] and ckpt.snapshot_steps() == [2, 4]
    ckpt.close()
    assert retained_steps([1, 2, 3], None, 1, snapshots=[1]) == {1, 3}


def _tiny_snapshot_config():
    return _config(schedule="cyclic_cosine", num_cycles=2, num_epochs=4, keep_checkpoints=1, warmup_epochs=0.0)


def test_a_cyclic_run_keeps_every_cycle_end_across_a_resume(tmp_path, monkeypatch):
    validate = loop._Trainer.validate

    def stop_after_epoch_3(self, step, state, programs):  # a preemption after epoch 3 (step 12) ...
        if step == 12:
            os.kill(os.getpid(), signal.SIGTERM)
        return validate(self, step, state, programs)

    monkeypatch.setattr(loop._Trainer, "validate", stop_after_epoch_3)
    first = loop.train_and_evaluate(_tiny_snapshot_config(), tmp_path)
    assert first.preempted and first.last_step == 12
    monkeypatch.setattr(loop._Trainer, "validate", validate)
    second = loop.train_and_evaluate(_tiny_snapshot_config(), tmp_path)  # ... then resumed to the end
    assert not second.preempted and second.last_step == 16
    with Checkpointer(tmp_path, read_only=True) as ckpt:
        assert ckpt.snapshot_steps() == [8, 16]  # both cycle ends (4 steps an epoch, 2 epochs a cycle)
        assert set(ckpt.all_steps()) == {8, 16, ckpt.best_step()}
        assert not any(ckpt.meta(s)[SNAPSHOT] for s in ckpt.all_steps() if s not in (8, 16))


def _train_script():
    spec = importlib.util.spec_from_file_location("train_script", ROOT / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _seeds_args(group, *extra):
    overrides = [f"--config.{k}={v}" for k, v in TINY.items() if k != "model"]
    return ["--config", str(ROOT / "configs/fashion_mnist/mlp.py"), "--workdir", str(group), *overrides,
            "--config.num_epochs=1", *extra]


def _run_seed(workdir):
    return json.loads((workdir / "run.json").read_text())["config"]


def test_seeds_trains_each_member_in_its_own_workdir_and_lists_them(tmp_path):
    train = _train_script()
    group = tmp_path / "ens"
    assert train.main(_seeds_args(group, "--seeds", "2", "--config.seed=7", "--config.bootstrap_seed=0")) == 0
    configs = [_run_seed(group / f"seed{k}") for k in (0, 1)]
    assert [(c["seed"], c["bootstrap_seed"]) for c in configs] == [(7, 0), (8, 1)]
    listing = json.loads((group / "members.json").read_text())
    assert listing == {"kind": "seeds", "members": [{"workdir": "seed0", "seed": 7, "bootstrap_seed": 0},
                                                    {"workdir": "seed1", "seed": 8, "bootstrap_seed": 1}]}
    with Checkpointer(group / "seed1", read_only=True) as ckpt:
        assert ckpt.all_steps() == [4]
    assert train.main(_seeds_args(group, "--seeds", "2", "--config.seed=7", "--config.bootstrap_seed=0")) == 0
    assert json.loads((group / "members.json").read_text()) == listing  # finished members: nothing more to do

    alone = tmp_path / "array_task"
    assert train.main(_seeds_args(alone, "--seeds", "3", "--seed_index", "1")) == 0
    assert sorted(p.name for p in alone.iterdir() if p.is_dir()) == ["seed1"]
    assert _run_seed(alone / "seed1")["seed"] == 1 and _run_seed(alone / "seed1")["bootstrap_seed"] == -1
    assert seeds.read_members(alone)["members"] == [{"workdir": "seed1", "seed": 1, "bootstrap_seed": -1}]


def test_concurrent_array_tasks_all_land_in_members_json(tmp_path):
    config = _config()
    threads = [threading.Thread(target=seeds.record, args=(tmp_path, seeds.member(config, tmp_path, k)))
               for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [m["seed"] for m in seeds.read_members(tmp_path)["members"]] == list(range(12))
    assert not list(tmp_path.glob("*.tmp*"))


def test_seeds_errors_are_one_line(tmp_path):
    with pytest.raises(seeds.SeedsError, match=r"--seed_index 2 is out of range: --seeds 2 has members 0\.\.1"):
        seeds.member_indices(2, 2)
    with pytest.raises(seeds.SeedsError, match="must be positive"):
        seeds.member_indices(0, None)
    (tmp_path / "members.json").write_text("[]")
    with pytest.raises(CnnjaxError, match="members.json is corrupt"):
        seeds.read_members(tmp_path)
    (tmp_path / "members.json").write_text('{"kind": "sweep", "members": []}')
    with pytest.raises(seeds.SeedsError, match="holds another kind of group"):
        seeds.read_members(tmp_path)
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(CnnjaxError, match="is a training workdir"):
        seeds.train_members(_config(), tmp_path, 2)


def test_an_interrupted_member_stops_the_launcher_unrecorded(tmp_path):
    class Result:
        def __init__(self, preempted):
            self.preempted = preempted

    trained = []
    fake = lambda config, workdir: trained.append(workdir.name) or Result(preempted=workdir.name == "seed1")
    runs = seeds.train_members(_config(), tmp_path, 3, train=fake)
    assert trained == ["seed0", "seed1"] and runs[-1].member.workdir == tmp_path / "seed1"
    assert seeds.read_members(tmp_path)["members"] == [{"workdir": "seed0", "seed": 0, "bootstrap_seed": -1}]
