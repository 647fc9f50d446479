"""`train_and_evaluate(config, workdir)`: the training loop around the pure, sharded step.

It resumes from the latest checkpoint of `workdir`, validates at every epoch end (exact evaluation),
checkpoints (last N + best), stops on a non-finite loss keeping the last good checkpoint, and on SIGTERM
or SIGINT (Ctrl-C) saves the current step before returning, so a preempted job continues where it stopped.
The run holds its workdir's lock (`workdir_lock`) throughout, so a second trainer there is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import pathlib
import signal
import time
from typing import Any, Iterator

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from cnnjax import plots
from cnnjax.config import ConfigError
from cnnjax.data import augment
from cnnjax.data.pipeline import DeviceSplit, normalize, replicate
from cnnjax.errors import NonFiniteLossError
from cnnjax.evaluate.exact import classification_metrics, make_predict_fn, predict_logits
from cnnjax.metrics_log import MetricsWriter, read_metrics
from cnnjax.train import experiment, init_from, parallel, run_info, workdir_lock
from cnnjax.train.checkpoint import BEST_METRIC, Checkpointer
from cnnjax.train.state import TrainState
from cnnjax.train.step import StepConfig, train_step

log = logging.getLogger("cnnjax")


@dataclasses.dataclass
class RunResult:
    state: TrainState
    last_step: int
    preempted: bool
    validation: dict[str, float] | None
    stop_signal: signal.Signals | None = None  # SIGTERM or SIGINT when `preempted`


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def _sigterm_flag() -> Iterator[dict[str, Any]]:
    """Turns SIGTERM and SIGINT (Ctrl-C) into a flag the loop checks between steps (only in the main thread).

    `flag["signal"]` records which one arrived first. A second SIGINT while stopping raises
    KeyboardInterrupt as usual (stop at once, without waiting for the save).
    """
    flag: dict[str, Any] = {"stop": False, "signal": None}

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag["stop"], flag["signal"] = True, flag["signal"] or signal.Signals(signum)

    try:  # a signal ignored by whoever started us (e.g. SIGINT for `train.py &` in a script) stays ignored
        previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS if signal.getsignal(s) != signal.SIG_IGN}
    except ValueError:  # not the main thread: no handler
        yield flag
        return
    try:
        yield flag
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


class _Interval:
    """Training metrics accumulated on device between two log points (fetched once per interval)."""

    def __init__(self) -> None:
        self.metrics: list[dict[str, jax.Array]] = []
        self.start = time.perf_counter()

    def summary(self, batch_size: int) -> dict[str, float]:
        fetched = jax.device_get(self.metrics)
        seconds = time.perf_counter() - self.start
        out = {k: float(np.mean([m[k] for m in fetched])) for k in ("loss", "top1")}
        out["lr"] = float(fetched[-1]["lr"])
        out["img_per_s"] = len(fetched) * batch_size / max(seconds, 1e-9)
        out["nonfinite"] = int(sum(m["nonfinite"] for m in fetched))
        return out


def _validate(exp: experiment.Experiment, predict_fn, state: TrainState, data: DeviceSplit | None,
              labels: np.ndarray | None) -> dict[str, float] | None:
    if data is None:
        return None
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    logits = predict_logits(predict_fn, variables, data, exp.config.eval_batch_size, exp.mesh)
    return classification_metrics(logits, labels)


def _progress(config: ml_collections.ConfigDict, total: int, initial: int):
    from tqdm import tqdm

    enabled = config.progress_bar and jax.process_index() == 0
    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True,
                mininterval=1.0)


def _kept(ckpt: Checkpointer) -> str:
    latest = ckpt.latest_step()
    if latest is None:
        return "No checkpoint had been saved yet, so nothing was kept."
    return f"The last good checkpoint (step {latest}) is kept in {ckpt.directory}."


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> RunResult:
    workdir = pathlib.Path(workdir)
    # One trainer per workdir (process 0 of a multi-host job holds it for all): refused before anything loads.
    with workdir_lock.hold(workdir, enabled=jax.process_index() == 0):
        workdir.mkdir(parents=True, exist_ok=True)
        augment.parse(config.augment)  # unknown ops fail before any data is loaded
        exp = experiment.build(config)
        with Checkpointer(workdir, config.keep_checkpoints) as ckpt:
            return _train(config, workdir, exp, ckpt)


def _train(config: ml_collections.ConfigDict, workdir: pathlib.Path, exp: experiment.Experiment,
           ckpt: Checkpointer) -> RunResult:
    state = exp.init_state()
    start = ckpt.latest_step() or 0
    run_info.save_or_check(workdir, config, resuming=start > 0)
    if start > exp.total_steps:
        raise ConfigError(f"{workdir} is already at step {start} (epoch {start / exp.batches.steps_per_epoch:g}), "
                          f"past num_epochs={config.num_epochs} ({exp.total_steps} steps): nothing to train; "
                          "raise num_epochs to extend the run, or evaluate it with eval.py")
    if start:
        state, _ = ckpt.restore(start, state)
        log.info("resumed from step %d of %s", start, ckpt.directory)
    elif config.get("init_from"):  # step 0 only: a resumed run's state already holds what init_from gave it
        state, report = init_from.apply(state, exp, config.init_from)
        if jax.process_index() == 0:
            init_from.record(workdir, report)
    is_chief = jax.process_index() == 0
    writer = MetricsWriter(workdir, resume_step=start, enabled=is_chief)
    data = exp.data
    mean, std = data.mean, data.std

    def make_batch(split: DeviceSplit, order: jax.Array, step: jax.Array):
        images, labels = exp.batches(split, order, step)
        return normalize(images, mean, std, exp.dtype), labels

    step_fn = functools.partial(train_step, model=exp.model, tx=exp.tx, schedule=exp.schedule,
                                cfg=StepConfig(config.label_smoothing, config.aux_loss_weight, config.bn_sync))
    train_fn = parallel.compile_train_step(step_fn, make_batch, exp.mesh)
    train_data = replicate(data.train, exp.mesh)
    val_data = replicate(data.validation, exp.mesh) if data.validation is not None else None
    val_labels = data.validation.labels if data.validation is not None else None
    predict_fn = make_predict_fn(exp.model, mean, std, exp.mesh, exp.dtype)
    t0 = time.perf_counter()
    epoch_order = jax.jit(exp.batches.order, out_shardings=NamedSharding(exp.mesh, P()))
    order = epoch_order(exp.batches.epoch_of(start))
    train_fn = train_fn.lower(state, train_data, order).compile()
    log.info("compiled the train step in %.1f s", time.perf_counter() - t0)

    spe, total = exp.batches.steps_per_epoch, exp.total_steps
    step, preempted, validation = start, False, None
    interval = _Interval()
    in_flight = parallel.DispatchWindow()
    bar = _progress(config, total, start)

    def flush(step: int) -> None:
        nonlocal interval
        ckpt.check()  # a failed background save stops the run now, not one epoch later at the next save
        if not interval.metrics:
            return
        summary = interval.summary(config.batch_size)
        if summary.pop("nonfinite"):
            bad = int(jax.device_get(state.step)) + 1
            ckpt.wait()
            raise NonFiniteLossError(
                f"loss became NaN/Inf at training step {bad}; stopped. {_kept(ckpt)} Lower the learning "
                "rate or enable --config.grad_clip_norm.")
        writer.write(step, step / spe, "train", summary)
        bar.set_postfix(loss=f"{summary['loss']:.4f}", top1=f"{summary['top1']:.4f}",
                        img_s=f"{summary['img_per_s']:.0f}")
        interval = _Interval()

    def save(step: int, validation: dict[str, float] | None) -> None:
        meta = {"step": step, "epoch": step / spe, BEST_METRIC: validation["top1"] if validation else None,
                "validation": validation}
        ckpt.save(step, state, meta)

    with _sigterm_flag() as sigterm:
        while step < total:
            if step % spe == 0:
                order = epoch_order(exp.batches.epoch_of(step))
            state, metrics = train_fn(state, train_data, order)
            in_flight.push(metrics)
            interval.metrics.append(metrics)
            step += 1
            bar.update(1)
            epoch_end = step % spe == 0
            periodic = config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0
            if step % config.log_every_steps == 0 or epoch_end or periodic or sigterm["stop"]:
                flush(step)
            if epoch_end:
                validation = _validate(exp, predict_fn, state, val_data, val_labels)
                if validation is not None:
                    writer.write(step, step / spe, "validation", validation)
                    if config.schedule == "plateau":
                        state = state.replace(plateau=state.plateau.update(
                            validation["top1"], config.plateau_patience, config.lr_decay_factor,
                            config.plateau_min_delta))
                    bar.write(f"epoch {step // spe}/{config.num_epochs}: validation top1 "
                              f"{validation['top1']:.4f} loss {validation['loss']:.4f} "
                              f"({validation['num_examples']} examples)")
            if epoch_end or periodic or sigterm["stop"]:
                save(step, validation if epoch_end else None)
            if sigterm["stop"]:
                preempted = True
                log.warning("%s: saved step %d, stopping", sigterm["signal"].name, step)
                break
    bar.close()
    ckpt.wait()
    writer.close()
    if is_chief and not preempted:
        plots.training_curves(read_metrics(workdir), workdir / "plots")
    return RunResult(state, step, preempted, validation, sigterm["signal"] if preempted else None)
