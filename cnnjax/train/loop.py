"""`train_and_evaluate(config, workdir)`: the training loop around the pure, sharded step.

It resumes from the latest checkpoint of `workdir`, validates at every epoch end (exact evaluation),
checkpoints (last N + best), stops on a non-finite loss keeping the last good checkpoint, and on SIGTERM
or SIGINT (Ctrl-C) saves the current step before returning, so a preempted job continues where it stopped.
The run holds its workdir's lock (`workdir_lock`) throughout, so a second trainer there is refused.

The parts: `_initial_state` (resume, init_from, run record), `_compile` (data on the devices and the
compiled programs), `_Trainer` (metrics, validation, checkpoints between steps) and `_run_steps` (the
step loop); the metrics writer, progress bar and checkpoint manager are closed on every exit.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import pathlib
import signal
import time
from typing import Callable

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from cnnjax import plots
from cnnjax.config import ConfigError
from cnnjax.data import augment, preprocess
from cnnjax.data.pipeline import DeviceSplit, replicate
from cnnjax.errors import NonFiniteLossError
from cnnjax.evaluate.exact import classification_metrics, predict_logits, preprocess_predict_fn
from cnnjax.metrics_log import MetricsWriter, read_metrics
from cnnjax.train import diagnosis, ema, experiment, init_from, parallel, run_info, run_statistics, workdir_lock
from cnnjax.train.dead_relu import dead_fractions_fn
from cnnjax.train.checkpoint import SNAPSHOT, Checkpointer
from cnnjax.train.profiling import StepProfiler
from cnnjax.train.signals import StopFlag, stop_flag
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


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> RunResult:
    workdir = pathlib.Path(workdir)
    # One trainer per workdir (process 0 of a multi-host job holds it for all): refused before anything loads.
    with workdir_lock.hold(workdir, enabled=jax.process_index() == 0):
        workdir.mkdir(parents=True, exist_ok=True)
        augment.parse(config.augment)  # unknown ops fail before any data is loaded
        exp = experiment.build(config)
        with Checkpointer(workdir, config.keep_checkpoints) as ckpt:
            state, start = _initial_state(config, workdir, exp, ckpt)
            # The preprocessing statistics: stored in the workdir (resumed) or derived once and stored there.
            stats = None if exp.inputs is not None else \
                run_statistics.for_training(config, workdir, exp.data.train_unresampled)
            programs = _compile(exp, state, start, ckpt.meta(start) if start else None, stats)
            trainer = _Trainer(config, workdir, exp, ckpt, start, stats)
            try:
                with stop_flag() as stop:
                    state, step = _run_steps(trainer, programs, state, start, stop)
                ckpt.wait()
            finally:
                trainer.close()
                programs.close()  # the streaming pipeline's worker processes
        if jax.process_index() == 0 and not stop.stop:
            plots.training_curves(read_metrics(workdir), workdir / "plots")
    return RunResult(state, step, stop.stop, trainer.validation, stop.signal)


def _initial_state(config: ml_collections.ConfigDict, workdir: pathlib.Path, exp: experiment.Experiment,
                   ckpt: Checkpointer) -> tuple[TrainState, int]:
    """The state to start from and its step: the latest checkpoint, else `init_from` weights, else fresh."""
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
    return state, start


@dataclasses.dataclass(frozen=True)
class _Programs:
    """The data on the devices and the compiled programs that read it."""

    train_step: Callable[..., tuple[TrainState, dict]]
    epoch_order: Callable[[int], jax.Array]
    train_data: DeviceSplit
    val_data: DeviceSplit | None
    val_labels: np.ndarray | None
    predict: Callable[..., jax.Array]
    checkpoint_meta: Callable[[], dict] = dict  # the input pipeline's position (stream), saved with each step
    step_at: Callable[[int], Callable[..., tuple[TrainState, dict]]] | None = None  # by image size (resizing)
    close: Callable[[], None] = lambda: None


def _compile(exp: experiment.Experiment, state: TrainState, start: int, resume_meta: dict | None = None,
             stats: preprocess.Statistics | None = None) -> _Programs:
    """`stats`: the in-memory pipeline's preprocessing (constants of the programs; None: per-channel
    standardisation with the experiment's statistics); unused for streamed input."""
    config, data = exp.config, exp.data
    step_fn = functools.partial(train_step, model=exp.model, tx=exp.tx, schedule=exp.schedule,
                                cfg=StepConfig.from_config(config, exp.class_weights, exp.frozen))
    if exp.inputs is not None:  # host-streamed or synthetic batches (cnnjax.data.stream): the same step
        return _Programs(**exp.inputs.programs(exp, step_fn, state, start, resume_meta))
    train_data = replicate(data.train, exp.mesh)
    stats = stats or preprocess.standardized(data.mean, data.std)
    epoch_order = jax.jit(exp.batches.order, out_shardings=NamedSharding(exp.mesh, P()))
    make_batch = exp.batch_maker(functools.partial(preprocess.apply, stats, dtype=exp.dtype))
    # Shapes only: the state's buffers are donated to the first step, before a later size is compiled.
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                            (state, epoch_order(exp.batches.epoch_of(start))))

    @functools.cache  # one program per image size (progressive resizing), compiled when first needed
    def compile_for(size: int | None):
        t0 = time.perf_counter()
        program = parallel.compile_train_step(step_fn, functools.partial(make_batch, size=size), exp.mesh).lower(
            abstract[0], train_data, abstract[1]).compile()
        log.info("compiled the train step%s in %.1f s", f" for {size}x{size} images" if size else "",
                 time.perf_counter() - t0)
        return program

    compiled = compile_for(exp.batches.size_at(start))
    validation = data.validation
    return _Programs(compiled, epoch_order, train_data,
                     replicate(validation, exp.mesh) if validation is not None else None,
                     validation.labels if validation is not None else None,
                     preprocess_predict_fn(exp.model, stats, exp.mesh, exp.dtype),
                     step_at=lambda step: compile_for(exp.batches.size_at(step)))


def _run_steps(trainer: "_Trainer", programs: _Programs, state: TrainState, start: int,
               stop: StopFlag) -> tuple[TrainState, int]:
    """Steps from `start` to the end (or to a stop signal, after saving); returns the state and its step."""
    config, spe, total = trainer.config, trainer.spe, trainer.exp.total_steps
    in_flight = parallel.DispatchWindow()
    step, order = start, None
    while step < total:
        if step % spe == 0 or order is None:
            order = programs.epoch_order(trainer.exp.batches.epoch_of(step))
        trainer.profiler.before_step(step)
        run = programs.step_at(step) if programs.step_at else programs.train_step
        state, metrics = run(state, programs.train_data, order)
        trainer.profiler.after_step(step, metrics)
        in_flight.push(metrics)
        trainer.interval.metrics.append(metrics)
        step += 1
        trainer.bar.update(1)
        epoch_end = step % spe == 0
        periodic = config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0
        logged = step % config.log_every_steps == 0 or epoch_end or periodic
        if logged:
            trainer.flush(step, state)
        if epoch_end:
            state = trainer.validate(step, state, programs)
            trainer.diagnose(step, state)
        # Asked after validation, so a signal during a long validation stops at this step; once a step, with
        # the same answer in every process of a job.
        stopping = stop.check(step)
        if stopping and not logged:
            trainer.flush(step, state)
        if epoch_end or periodic or stopping:
            trainer.save(step, state, epoch_end, programs.checkpoint_meta())
        if stopping:
            log.warning("%s: saved step %d, stopping", stop.signal.name, step)
            break
    return state, step


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


class _Trainer:
    """What happens between steps: logging metrics, validating, the plateau schedule, checkpoints."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: pathlib.Path, exp: experiment.Experiment,
                 ckpt: Checkpointer, start: int, stats: preprocess.Statistics | None = None):
        from tqdm import tqdm

        self.config, self.exp, self.ckpt = config, exp, ckpt
        self.stats = stats  # the in-memory pipeline's preprocessing (the dead-ReLU probe's inputs); None: streamed
        self.spe = exp.batches.steps_per_epoch
        chief = jax.process_index() == 0
        self.workdir = workdir
        self.writer = MetricsWriter(workdir, resume_step=start, enabled=chief)
        self.bar = tqdm(total=exp.total_steps, initial=start, disable=not (config.progress_bar and chief),
                        unit="step", dynamic_ncols=True, mininterval=1.0)
        self.interval = _Interval()
        self.validation: dict[str, float] | None = None
        self.profiler = StepProfiler(config.get("profile_steps", ""), workdir)
        self._probe_images: jax.Array | None = None  # made at the first epoch end (see _probe)
        self._dead = dead_fractions_fn(exp.model)

    def flush(self, step: int, state: TrainState) -> None:
        """Writes the interval's training metrics; stops the run on a non-finite loss or a failed save."""
        self.ckpt.check()  # a failed background save stops the run now, not one epoch later at the next save
        if not self.interval.metrics:
            return
        summary = self.interval.summary(self.config.batch_size)
        if summary.pop("nonfinite"):
            bad = int(jax.device_get(state.step)) + 1
            if self.config.get("diagnosis", True):
                self.writer.write(step, step / self.spe, "diagnosis", {"lr_too_high": 1.0, "nonfinite": 1.0})
            self.ckpt.wait()
            raise NonFiniteLossError(
                f"loss became NaN/Inf at training step {bad}; stopped. {_kept(self.ckpt)} Lower the learning "
                "rate or enable --config.grad_clip_norm.")
        self.writer.write(step, step / self.spe, "train", summary)
        self.bar.set_postfix(loss=f"{summary['loss']:.4f}", top1=f"{summary['top1']:.4f}",
                             img_s=f"{summary['img_per_s']:.0f}")
        self.interval = _Interval()

    def validate(self, step: int, state: TrainState, programs: _Programs) -> TrainState:
        """Exact validation at an epoch end; the plateau schedule reads it. Returns the (updated) state."""
        if programs.val_data is None:
            return state

        def score(variables: dict) -> dict[str, float]:
            logits = predict_logits(programs.predict, variables, programs.val_data, self.config.eval_batch_size,
                                    self.exp.mesh)
            return classification_metrics(logits, programs.val_labels)

        validation = score({"params": state.params, "batch_stats": state.batch_stats})
        self.validation = validation = ema.add_ema_metrics(validation, state, score)  # ema_top1, ... if EMA on
        self.writer.write(step, step / self.spe, "validation", validation)
        if self.config.schedule == "plateau":
            state = state.replace(plateau=state.plateau.update(
                validation["top1"], self.config.plateau_patience, self.config.lr_decay_factor,
                self.config.plateau_min_delta))
        self.bar.write(f"epoch {step // self.spe}/{self.config.num_epochs}: validation top1 "
                       f"{validation['top1']:.4f} loss {validation['loss']:.4f} "
                       f"({validation['num_examples']} examples)"
                       + (f", EMA top1 {validation['ema_top1']:.4f}" if "ema_top1" in validation else ""))
        return state

    def diagnose(self, step: int, state: TrainState) -> None:
        """The epoch end's `diagnosis` record (flags, train/validation gap, dead ReLUs per layer) and hints."""
        if not self.config.get("diagnosis", True) or not self.writer.enabled:
            return
        found = diagnosis.diagnose(read_metrics(self.workdir))
        values, hints = found.record(), list(found.hints)
        probe = self._probe()
        if probe is not None:
            # This process's copy of the replicated weights: the probe runs on one local device.
            local = jax.tree.map(lambda x: x.addressable_data(0),
                                 {"params": state.params, "batch_stats": state.batch_stats})
            dead = {k: float(v) for k, v in jax.device_get(self._dead(local, probe)).items()}
            values.update({f"dead_relu/{k}": v for k, v in dead.items()})
            hints += diagnosis.dead_relu_hints(dead)
        self.writer.write(step, step / self.spe, "diagnosis", values)
        for hint in hints:
            log.warning("epoch %d diagnosis: %s", step // self.spe, hint)

    def _probe(self) -> jax.Array | None:
        """The fixed probe batch (the first dead_relu_probe validation, else training, examples), preprocessed as
        the run's batches are."""
        size, data = self.config.get("dead_relu_probe", 0), self.exp.data
        if not size or self.exp.inputs is not None:
            return None
        if self._probe_images is None:
            split = data.validation if data.validation is not None else data.train
            images = jax.device_put(split.images[:size], jax.local_devices()[0])
            self._probe_images = preprocess.apply(self.stats, images, self.exp.dtype)
        return self._probe_images

    def save(self, step: int, state: TrainState, epoch_end: bool, extra_meta: dict | None = None) -> None:
        """Checkpoints `step`; only an epoch end carries validation metrics (what retention ranks by) and may be
        a cyclic_cosine snapshot (which retention keeps)."""
        validation = self.validation if epoch_end else None
        meta = {"step": step, "epoch": step / self.spe,
                **ema.checkpoint_scores(validation, self.config.get("ema_select_best", False)),
                "validation": validation, SNAPSHOT: epoch_end and self.exp.is_snapshot(step)}
        self.ckpt.save(step, state, {**meta, **(extra_meta or {})})

    def close(self) -> None:
        self.profiler.stop()  # a run stopped inside the profiled window still writes its trace
        self.bar.close()
        self.writer.close()


def _kept(ckpt: Checkpointer) -> str:
    latest = ckpt.latest_step()
    if latest is None:
        return "No checkpoint had been saved yet, so nothing was kept."
    return f"The last good checkpoint (step {latest}) is kept in {ckpt.directory}."
