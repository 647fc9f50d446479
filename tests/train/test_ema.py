"""EMA of the weights: the update rule inside the step, its independence from training, validation of both
weight sets, checkpoints, resume and `eval.py --ema`."""

from __future__ import annotations

import functools
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.config import ConfigError, base_config
from cnnjax.errors import CnnjaxError
from cnnjax.models import create_model
from cnnjax.train import ema, optim, run_info
from cnnjax.train.state import EmaTrainState, TrainState, create_train_state
from cnnjax.train.step import StepConfig, train_step


def test_warmup_follows_tensorflows_num_updates_rule():
    steps = jnp.asarray([0, 1, 90, 10**6], jnp.int32)
    got = np.asarray([float(ema.decay_at(t, 0.999, warmup=True)) for t in steps])
    np.testing.assert_allclose(got, [0.1, 2 / 11, 0.91, 0.999], rtol=1e-6)
    assert float(ema.decay_at(steps[0], 0.999, warmup=False)) == pytest.approx(0.999)


def _steps(ema_decay: float, n: int = 3, warmup: bool = False):
    """`n` Adam steps of ResNet-20 (BatchNorm) on random 16x16 batches; the states after each."""
    config = base_config()
    schedule = optim.make_schedule(config, 10)
    tx = optim.make_optimizer(config, schedule)
    model = create_model("resnet20", 10)
    state = create_train_state(model, tx, (16, 16, 3), seed=0, ema=ema_decay > 0)
    step = jax.jit(functools.partial(train_step, model=model, tx=tx, schedule=schedule, axis_name=None,
                                     cfg=StepConfig(ema_decay=ema_decay, ema_warmup=warmup)))
    rng = np.random.default_rng(0)
    states = [state]
    for _ in range(n):
        images = jnp.asarray(rng.normal(size=(8, 16, 16, 3)), jnp.float32)
        labels = jnp.asarray(rng.integers(0, 10, 8), jnp.int32)
        states.append(step(states[-1], images, labels)[0])
    return states


def test_the_step_averages_params_and_batch_stats_without_changing_training():
    decay = 0.9
    with_ema, without = _steps(decay), _steps(0.0)
    assert type(without[-1]) is TrainState and isinstance(with_ema[-1], EmaTrainState)
    for a, b in zip(with_ema, without):  # the EMA never feeds back: training is bit-identical
        for part in ("params", "batch_stats", "opt_state"):
            jax.tree.map(np.testing.assert_array_equal, getattr(a, part), getattr(b, part))
    expected = jax.tree.map(jnp.copy, {"params": with_ema[0].params, "batch_stats": with_ema[0].batch_stats})
    for s in with_ema[1:]:  # ema_t = d * ema_{t-1} + (1 - d) * w_t, replayed in float64
        current = {"params": s.params, "batch_stats": s.batch_stats}
        expected = jax.tree.map(lambda e, w: decay * np.float64(e) + (1 - decay) * np.float64(w), expected, current)
        # a few float32 roundings of values of magnitude <= |e| + |w| per update
        jax.tree.map(lambda got, want: np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6), s.ema, expected)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(with_ema[-1].ema))
    moved = jax.tree.leaves(jax.tree.map(lambda e, p: float(jnp.abs(e - p).max()), with_ema[-1].ema["params"],
                                         with_ema[-1].params))
    assert max(moved) > 0  # the average lags the weights


def test_ema_keys_are_validated_and_not_resumable(tmp_path):
    from cnnjax.config import validate

    for key, value, message in (("ema_decay", 1.0, "ema_decay must be in [0, 1)"),
                                ("ema_select_best", True, "ema_select_best ranks checkpoints by the EMA")):
        config = base_config()
        config[key] = value
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(")", r"\)")):
            validate(config)
    saved = {"config": json.loads(json.dumps(base_config().to_dict()))}
    changed = base_config()
    changed.ema_decay = 0.999
    with pytest.raises(ConfigError, match="ema_decay: 0.0 -> 0.999"):
        run_info.check_compatible(saved, changed, tmp_path / "run.json")
    assert "ema_decay" not in run_info.RESUMABLE_KEYS and "ema_select_best" not in run_info.RESUMABLE_KEYS


def test_eval_ema_of_a_run_without_ema_is_a_one_line_error(tmp_path):
    from cnnjax.evaluate.run import evaluate_workdir

    (tmp_path / "run.json").write_text(json.dumps({"config": base_config().to_dict()}))
    with pytest.raises(CnnjaxError, match="trained with ema_decay=0: it has no EMA weights; drop --ema"):
        evaluate_workdir(tmp_path, "validation", ema=True)


@pytest.mark.slow
def test_a_run_with_ema_validates_checkpoints_resumes_and_evaluates_it(tmp_path):
    from cnnjax.evaluate.run import evaluate_workdir
    from cnnjax.train.checkpoint import Checkpointer
    from tests.train.test_train_script import (assert_same_tree, eval_cmd, metric_records, restore_params, run,
                                              train_cmd)

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    extra = ("--config.num_train_examples=480", "--config.ema_decay=0.9")  # 2 epochs of 10 steps
    assert (result := run(train_cmd(straight, *extra))).returncode == 0, result.stderr[-3000:]
    shutil.copytree(straight, resumed)  # the run as if it had stopped after its first epoch's checkpoint
    shutil.rmtree(resumed / "checkpoints" / "20")
    result = run(train_cmd(resumed, *extra))
    assert result.returncode == 0 and "resumed from step 10" in result.stderr, result.stderr[-3000:]
    assert_same_tree(restore_params(straight, 20), restore_params(resumed, 20))  # EMA included, bit for bit
    assert metric_records(straight) == metric_records(resumed)
    state = restore_params(straight, 20)
    assert set(state["ema"]) == {"params", "batch_stats"}
    validation = [r for r in metric_records(straight) if r["split"] == "validation"]
    assert [r["step"] for r in validation] == [10, 20]
    assert all({"top1", "ema_top1", "ema_loss"} <= set(r) for r in validation)
    with Checkpointer(straight, read_only=True) as ckpt:
        meta = ckpt.meta(20)
    assert meta["val_top1"] == validation[-1]["top1"] and meta["val_ema_top1"] == validation[-1]["ema_top1"]
    # eval.py --ema scores exactly the weights validation scored (same split, same checkpoint)
    raw = evaluate_workdir(straight, "validation", step=20)
    averaged = evaluate_workdir(straight, "validation", step=20, ema=True)
    assert raw["top1"] == validation[-1]["top1"] and raw["loss"] == pytest.approx(validation[-1]["loss"], rel=1e-9)
    assert averaged["top1"] == validation[-1]["ema_top1"] and averaged["weights"] == "ema"
    assert averaged["loss"] == pytest.approx(validation[-1]["ema_loss"], rel=1e-9) and averaged["loss"] != raw["loss"]
    cli = run(eval_cmd(straight, "--split", "validation", "--step", "20", "--ema"))
    assert cli.returncode == 0 and "(EMA weights)" in cli.stdout, cli.stderr[-2000:]
