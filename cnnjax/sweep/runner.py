"""`run_sweep`: train every point of a sweep in turn, in-process, resumably; rank them; refit the best after CV.

Layout of a sweep directory: without `--cv`, `<index>-<slug>/` is the point's training workdir; with
`--cv K` it holds `fold0/`..`fold<K-1>/` (validation = that fold of a stratified K-fold split of the
training examples) and, for the `top_k` points by mean fold score, `refit/` (the standard validation carve
again). Only standard-carve runs share their validation examples, so only they are ensemble members.

`sweep.json` records the specification and each finished run (score, seconds), rewritten atomically after
every run: a re-run with the same flags skips finished runs and resumes an interrupted one from its last
checkpoint (`train_and_evaluate` resumes by itself); other flags on the same directory are refused. A run
whose loss became NaN/Inf is recorded as failed (the point ranks last) and the sweep goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import signal
import time
from typing import Any, Callable

import ml_collections

from cnnjax import groups
from cnnjax.config import has_validation, load_config
from cnnjax.errors import NonFiniteLossError, first_line
from cnnjax.sweep import table
from cnnjax.sweep.space import Point, SweepError, point_name
from cnnjax.train import workdir_lock
from cnnjax.train.checkpoint import BEST_METRIC, open_read_only

log = logging.getLogger("cnnjax")
STATE_FILE = "sweep.json"
CV_KEYS = ("cv_folds", "cv_fold")
TrainFn = Callable[[ml_collections.ConfigDict, pathlib.Path], Any]  # train_and_evaluate's signature


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    config: str  # config file path
    fixed: tuple[str, ...]  # `key=value` overrides of every run
    points: tuple[Point, ...]
    cv: int = 0  # folds; 0 = score on the standard validation carve
    top_k: int = 1  # with cv: how many of the best points are refit on the standard carve

    def record(self) -> dict[str, Any]:
        """What must match for a re-run to resume this sweep (top_k may grow: more refits)."""
        return {"config": os.path.abspath(self.config), "fixed": list(self.fixed),
                "points": [list(p) for p in self.points], "cv": self.cv}


@dataclasses.dataclass(frozen=True)
class _Run:
    name: str  # relative to the sweep directory
    overrides: tuple[str, ...]


@dataclasses.dataclass
class SweepOutcome:
    ranked: list[table.PointResult]
    stop_signal: signal.Signals | None = None  # a run was stopped by SIGTERM/SIGINT: the sweep stopped too


def check_spec(spec: SweepSpec) -> None:
    if spec.cv == 1:
        raise SweepError("--cv 1 has no held-out fold; use --cv 2 or more, or drop --cv (standard validation)")
    if spec.cv < 0:
        raise SweepError(f"--cv must be >= 2, got {spec.cv}")
    if not 1 <= spec.top_k <= len(spec.points):
        raise SweepError(f"--top_k {spec.top_k} must be between 1 and the sweep's {len(spec.points)} points")
    if spec.cv and any(k.startswith(f"{c}=") for k in spec.fixed for c in CV_KEYS):
        raise SweepError("--cv sets cv_folds/cv_fold itself; drop --config.cv_folds/--config.cv_fold")


def fold_runs(spec: SweepSpec, index: int) -> list[_Run]:
    """The runs that score point `index`: its K folds, or the one standard-carve run."""
    name, base = point_name(index, spec.points[index]), (*spec.fixed, *spec.points[index])
    if not spec.cv:
        return [_Run(name, base)]
    return [_Run(f"{name}/fold{k}", (*base, f"cv_folds={spec.cv}", f"cv_fold={k}")) for k in range(spec.cv)]


def refit_run(spec: SweepSpec, index: int) -> _Run:
    return _Run(f"{point_name(index, spec.points[index])}/refit", (*spec.fixed, *spec.points[index]))


def run_sweep(spec: SweepSpec, workdir: str | pathlib.Path, train: TrainFn | None = None) -> SweepOutcome:
    """Trains what is not finished yet, then writes sweep.csv, sweep.md and members.json (best first)."""
    check_spec(spec)
    workdir = pathlib.Path(workdir)
    groups.check_group_dir(workdir)
    runs = [run for i in range(len(spec.points)) for run in fold_runs(spec, i)]
    refits = [refit_run(spec, i) for i in range(len(spec.points))] if spec.cv else []
    configs = {run.name: _config(spec.config, run.overrides) for run in runs + refits}  # every error before work
    if train is None:
        from cnnjax.train.loop import train_and_evaluate as train
    with workdir_lock.hold(workdir):  # one sweep per directory (each run also locks its own workdir)
        state = _load_state(workdir, spec)
        stop = _train_in_turn(state, workdir, runs, configs, train)
        if stop is None and spec.cv:
            chosen = [r for r in table.rank(_results(spec, state)) if r.ok][:spec.top_k]
            log.info("refitting the best %d point(s) by CV score: %s", len(chosen),
                     ", ".join(f"{r.name} ({r.score:.4f})" for r in chosen))
            stop = _train_in_turn(state, workdir, [refit_run(spec, r.index) for r in chosen], configs, train)
        if stop is not None:
            return SweepOutcome(_results(spec, state), stop)
        ranked = table.rank(_results(spec, state))
        _write_outputs(workdir, spec, ranked)
    return SweepOutcome(ranked)


def _train_in_turn(state: dict[str, Any], workdir: pathlib.Path, runs: list[_Run],
                   configs: dict[str, ml_collections.ConfigDict], train: TrainFn) -> signal.Signals | None:
    """Each of `runs` in order (finished ones skipped); stops at the first preempted one and returns its signal."""
    for number, run in enumerate(runs, 1):
        log.info("sweep run %d/%d: %s", number, len(runs), run.name)
        stop = _ensure(state, workdir, run, configs[run.name], train)
        if stop is not None:
            return stop
    return None


def _config(path: str, overrides: tuple[str, ...]) -> ml_collections.ConfigDict:
    config = load_config(path, overrides)
    if not has_validation(config):
        raise SweepError("a sweep scores its runs by validation top-1 (with --cv the refits too): set "
                         "--config.validation_size > 0")
    return config


def _load_state(workdir: pathlib.Path, spec: SweepSpec) -> dict[str, Any]:
    path = workdir / STATE_FILE
    if not path.is_file():
        return {"spec": spec.record(), "runs": {}}
    state = groups.read_json(path, remedy="delete it to retrain every point, or use a new --workdir")
    if state.get("spec") != spec.record():
        old, new = state.get("spec") or {}, spec.record()
        differing = ", ".join(k for k in new if old.get(k) != new[k])
        raise SweepError(f"{workdir} holds another sweep (its {differing} differ); re-run it with the same "
                         "--config/--grid/--random/--sweep_seed/--cv and overrides, or use a new --workdir")
    return state


def _ensure(state: dict[str, Any], workdir: pathlib.Path, run: _Run, config: ml_collections.ConfigDict,
            train: TrainFn) -> signal.Signals | None:
    """Trains `run` unless `state` records it finished; records it. Returns the stop signal if preempted."""
    record = state["runs"].setdefault(run.name, {"seconds": 0.0, "done": False})
    if record["done"]:
        log.info("%s is finished (score %s): skipped", run.name, record.get("score"))
        return None
    start = time.perf_counter()
    try:
        result = train(config, workdir / run.name)
    except NonFiniteLossError as err:
        record.update(done=True, score=None, error=first_line(err))
        log.warning("%s failed and ranks last: %s", run.name, record["error"])
    else:
        if result.preempted:
            record["seconds"] += time.perf_counter() - start
            groups.write_json_atomic(workdir / STATE_FILE, state)
            return result.stop_signal or signal.SIGTERM
        record.update(done=True, score=best_validation_top1(workdir / run.name))
    record["seconds"] += time.perf_counter() - start
    groups.write_json_atomic(workdir / STATE_FILE, state)
    return None


def best_validation_top1(run_dir: pathlib.Path) -> float:
    """The validation top-1 of the run's best checkpoint (what retention always keeps)."""
    with open_read_only(run_dir) as ckpt:
        step = ckpt.best_step()
        score = ckpt.meta(step).get(BEST_METRIC) if step is not None else None
    if score is None:
        raise SweepError(f"{run_dir} has no checkpoint with a validation score; delete it and re-run the sweep")
    return float(score)


def _results(spec: SweepSpec, state: dict[str, Any]) -> list[table.PointResult]:
    """One result per point whose scoring runs are all finished (in sweep order)."""
    results = (_point_result(spec, state, index) for index in range(len(spec.points)))
    return [r for r in results if r is not None]


def _point_result(spec: SweepSpec, state: dict[str, Any], index: int) -> table.PointResult | None:
    runs = fold_runs(spec, index)
    records = [state["runs"].get(run.name) or {} for run in runs]
    if not all(r.get("done") for r in records):
        return None
    refit_name = refit_run(spec, index).name if spec.cv else ""
    refit = state["runs"].get(refit_name) or {}
    finished = [r for r in (*records, refit) if r.get("done")]
    errors = [r["error"] for r in finished if r.get("error")]
    if spec.cv:
        member = refit_name if refit.get("done") and not refit.get("error") else None
    else:
        member = None if errors else runs[0].name
    return table.PointResult(
        index=index, name=point_name(index, spec.points[index]), overrides=spec.points[index],
        fold_scores=tuple(float("nan") if r.get("score") is None else r["score"] for r in records),
        workdirs=tuple(run.name for run in runs) + ((refit_name,) if refit.get("done") else ()),
        seconds=sum(r["seconds"] for r in finished), cv=bool(spec.cv), refit_score=refit.get("score"),
        member=member, note="; ".join(errors))


def _write_outputs(workdir: pathlib.Path, spec: SweepSpec, ranked: list[table.PointResult]) -> None:
    groups.write_text_atomic(workdir / "sweep.csv", table.to_csv(ranked))
    how = f"mean of {spec.cv}-fold CV validation top-1" if spec.cv else "best validation top-1"
    groups.write_text_atomic(workdir / "sweep.md", table.to_markdown(
        ranked, f"Sweep of {spec.config}: {len(ranked)} points ranked by {how}"))
    groups.write_members(workdir, "sweep", table.members(ranked), metric="val_top1",
                         scored_by="cv" if spec.cv else "validation", cv_folds=spec.cv)
