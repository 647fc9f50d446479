"""SAMME boosting (Zhu, Zou, Rosset & Hastie 2009, "Multi-class AdaBoost") of whole training runs, by resampling.

Round m trains `<workdir>/round<m>` on a same-size resample of the carved training examples drawn in
proportion to the weights `weights<m>.npy` (`train_sample_weights`, seeded by `bootstrap_seed=m`), then
scores that run's best checkpoint (validation top-1) on every carved training example once, un-resampled:

    err_m   = sum(w * miss) / sum(w)
    alpha_m = log((1 - err_m) / err_m) + log(K - 1)
    w      <- w * exp(alpha_m * miss), normalised         (weights<m+1>.npy)

Boosting stops early when a round is no better than chance (err_m >= 1 - 1/K: the round is dropped, its
alpha would not be positive) or perfect on the training examples (err_m = 0: alpha is infinite; the round is
kept with the large finite alpha of err = ZERO_ERROR and nothing is left to reweight). The ensemble predicts
argmax_k sum_m alpha_m [member m predicts k].

State: `boosting.json` after every round (atomically), so re-running the command resumes (a larger --rounds
continues a finished boost); `members.json` (kind "boost", rounds in order, `weight` = alpha) for the
ensemble evaluator; `boosting.md` and the `report` of boosting.json compare each round's member with the
alpha-weighted vote of the rounds so far on the validation and test splits.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pathlib
import signal
import time
from typing import Any, Callable

import ml_collections
import numpy as np

from cnnjax import groups, sharding
from cnnjax.config import has_validation, load_config
from cnnjax.data.pipeline import replicate
from cnnjax.data.splits import Datasets, load_for_config
from cnnjax.errors import CnnjaxError
from cnnjax.evaluate.exact import predict_logits, preprocess_predict_fn
from cnnjax.evaluate.restore import abstract_variables, restore_variables
from cnnjax.train import experiment, run_statistics, workdir_lock
from cnnjax.train.checkpoint import open_read_only

log = logging.getLogger("cnnjax")
STATE_FILE = "boosting.json"
ZERO_ERROR = 1e-10  # a perfect round's error, for a finite alpha (~23 + log(K-1))
OWN_KEYS = ("train_sample_weights", "bootstrap_seed")  # set by each round
TrainFn = Callable[[ml_collections.ConfigDict, pathlib.Path], Any]


class BoostingError(CnnjaxError, ValueError):
    """Boosting options that cannot be used as given, or a boosting directory that belongs to another boost."""


def weighted_error(weights: np.ndarray, miss: np.ndarray) -> float:
    """The weighted training error of a round: the weight of the misclassified examples over the total."""
    return float(np.sum(weights * miss) / np.sum(weights))


def samme_alpha(error: float, num_classes: int) -> float:
    """log((1 - err) / err) + log(K - 1): positive exactly when the round beats chance (err < 1 - 1/K)."""
    error = max(error, ZERO_ERROR)
    return math.log((1.0 - error) / error) + math.log(num_classes - 1)


def stop_reason(error: float, num_classes: int) -> str | None:
    """Why boosting stops after a round with this weighted error, or None to go on."""
    if error >= 1.0 - 1.0 / num_classes:
        return (f"weighted training error {error:.4f} >= 1 - 1/K = {1 - 1 / num_classes:.4f}: no better than "
                "chance, the round is dropped")
    if error == 0.0:
        return "weighted training error 0: every training example is right, nothing is left to reweight"
    return None


def update_weights(weights: np.ndarray, miss: np.ndarray, alpha: float) -> np.ndarray:
    """w * exp(alpha * miss), normalised to sum 1 (float64): the misclassified examples gain weight."""
    updated = np.asarray(weights, np.float64) * np.exp(alpha * np.asarray(miss, np.float64))
    return updated / updated.sum()


def samme_votes(predictions: np.ndarray, alphas: np.ndarray, num_classes: int) -> np.ndarray:
    """(N, K) alpha-weighted votes of the members' predicted classes `predictions` (M, N)."""
    votes = np.zeros((predictions.shape[1], num_classes), np.float64)
    for member, alpha in zip(predictions, alphas):
        votes[np.arange(len(member)), member] += alpha
    return votes


def samme_top1(predictions: np.ndarray, alphas: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Top-1 of the SAMME vote (ties go to the lower class index, as argmax does)."""
    return float(np.mean(samme_votes(predictions, alphas, num_classes).argmax(1) == labels))


@dataclasses.dataclass(frozen=True)
class BoostSpec:
    config: str
    overrides: tuple[str, ...]  # `key=value`, for every round
    rounds: int

    def record(self) -> dict[str, Any]:
        """What must match for a re-run to resume (rounds may change: a larger one continues)."""
        return {"config": os.path.abspath(self.config), "overrides": list(self.overrides)}


@dataclasses.dataclass
class BoostOutcome:
    state: dict[str, Any]
    stop_signal: signal.Signals | None = None  # a round was stopped by SIGTERM/SIGINT


def run_boosting(spec: BoostSpec, workdir: str | pathlib.Path, train: TrainFn | None = None) -> BoostOutcome:
    """Trains the rounds not finished yet (resuming an interrupted one), then writes the report and members."""
    if spec.rounds < 1:
        raise BoostingError(f"--rounds must be positive, got {spec.rounds}")
    base = load_config(spec.config, spec.overrides)
    set_here = [k for k in OWN_KEYS if any(o.startswith(f"{k}=") for o in spec.overrides)]
    if set_here:
        raise BoostingError(f"boosting sets {set_here[0]} itself in every round; drop --config.{set_here[0]}")
    if not has_validation(base):
        raise BoostingError("each round's best checkpoint is chosen by validation top-1: set validation_size > 0")
    if train is None:
        from cnnjax.train.loop import train_and_evaluate as train
    workdir = pathlib.Path(workdir)
    groups.check_group_dir(workdir)
    data = load_for_config(base, with_test=True, resample=False)  # carved train (un-resampled), validation, test
    with workdir_lock.hold(workdir):  # one booster per directory (each round also locks its own workdir)
        state = _load_state(workdir, spec, data)
        while len(state["rounds"]) < spec.rounds and not state["stopped"]:
            stop = _boost_round(spec, workdir, state, data, train)
            if stop is not None:
                return BoostOutcome(state, stop)
        if state["stopped"]:
            log.info("boosting stopped after round %d: %s", len(state["rounds"]) - 1, state["stopped"])
        state["report"] = _report(spec, workdir, state, data)
        groups.write_json_atomic(workdir / STATE_FILE, state)
        groups.write_text_atomic(workdir / "boosting.md", to_markdown(state))
        groups.write_members(workdir, "boost", [
            {"workdir": r["workdir"], "weight": r["alpha"], "error": r["train_error"]}
            for r in state["rounds"] if r["kept"]], weighted_by="samme_alpha")
    return BoostOutcome(state)


def _load_state(workdir: pathlib.Path, spec: BoostSpec, data: Datasets) -> dict[str, Any]:
    path = workdir / STATE_FILE
    if not path.is_file():
        return {"spec": spec.record(), "num_classes": data.meta.num_classes,
                "num_train_examples": len(data.train), "rounds": [], "stopped": None}
    state = groups.read_json(path, remedy="delete it and the round directories to boost again, or use a new --workdir")
    if state.get("spec") != spec.record():
        raise BoostingError(f"{workdir} holds a boost of another config or overrides; re-run it with the same "
                            "--config and --config.* flags, or use a new --workdir")
    state.pop("report", None)  # recomputed once the rounds are done
    return state


def round_config(spec: BoostSpec, workdir: pathlib.Path, index: int) -> ml_collections.ConfigDict:
    """Round `index`'s config: the user's, resampled by weights<index>.npy with bootstrap_seed = index."""
    weights = (workdir / f"weights{index}.npy").resolve()
    return load_config(spec.config, (*spec.overrides, f"train_sample_weights={weights}", f"bootstrap_seed={index}"))


def _boost_round(spec: BoostSpec, workdir: pathlib.Path, state: dict[str, Any], data: Datasets,
                 train: TrainFn) -> signal.Signals | None:
    """Trains and scores the next round, records it (and the next round's weights); the stop signal if preempted."""
    index, num_classes = len(state["rounds"]), state["num_classes"]
    weights_file = workdir / f"weights{index}.npy"
    if index == 0 and not weights_file.is_file():
        _save_npy(weights_file, np.full(len(data.train), 1.0 / len(data.train)))
    config = round_config(spec, workdir, index)
    log.info("boosting round %d of %d: %s", index, spec.rounds, workdir / f"round{index}")
    start = time.perf_counter()
    result = train(config, workdir / f"round{index}")
    if result.preempted:
        return result.stop_signal or signal.SIGTERM
    seconds = time.perf_counter() - start
    miss = member_logits(workdir / f"round{index}", config, data, ("train",))["train"].argmax(1) != data.train.labels
    weights = np.load(weights_file)
    error = weighted_error(weights, miss)
    reason = stop_reason(error, num_classes)
    kept = error < 1.0 - 1.0 / num_classes
    alpha = samme_alpha(error, num_classes) if kept else None
    if reason is None:
        _save_npy(workdir / f"weights{index + 1}.npy", update_weights(weights, miss, alpha))
    state["rounds"].append({"round": index, "workdir": f"round{index}", "weights": weights_file.name,
                            "train_error": error, "unweighted_train_error": float(miss.mean()), "alpha": alpha,
                            "kept": kept, "seconds": round(seconds, 1)})
    state["stopped"] = reason
    log.info("round %d: weighted training error %.4f, alpha %s%s", index, error,
             "-" if alpha is None else f"{alpha:.4f}", f"; stopping: {reason}" if reason else "")
    groups.write_json_atomic(workdir / STATE_FILE, state)
    return None


def _save_npy(path: pathlib.Path, array: np.ndarray) -> None:
    """np.save through a temporary name and a rename: a killed run never leaves half a weights file."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)


def member_logits(run_dir: pathlib.Path, config: ml_collections.ConfigDict, data: Datasets,
                  splits: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Exact logits of the run's best checkpoint on `splits` of `data` (restored once, params only)."""
    mesh = sharding.make_mesh(config.num_devices)
    net = experiment.build_model(config, data.meta.num_classes, data.meta.image_shape)
    with open_read_only(run_dir) as ckpt:
        variables, _ = restore_variables(ckpt, ckpt.best_step(), abstract_variables(net, data.meta.image_shape, mesh))
    stats = run_statistics.for_evaluation(config, run_dir, data.train_unresampled)  # as the round trained
    predict_fn = preprocess_predict_fn(net, stats, mesh, experiment.DTYPES[config.dtype])
    return {name: predict_logits(predict_fn, variables, replicate(data.split(name), mesh), config.eval_batch_size,
                                 mesh) for name in splits}


def _report(spec: BoostSpec, workdir: pathlib.Path, state: dict[str, Any], data: Datasets) -> list[dict[str, Any]]:
    """Per kept round: its member's and the SAMME vote's (rounds so far) validation and test top-1."""
    kept = [r for r in state["rounds"] if r["kept"]]
    splits = ("validation", "test")
    predictions: dict[str, list[np.ndarray]] = {name: [] for name in splits}
    rows = []
    for record in kept:
        logits = member_logits(workdir / record["workdir"], round_config(spec, workdir, record["round"]), data, splits)
        row = {"round": record["round"], "train_error": record["train_error"], "alpha": record["alpha"]}
        alphas = np.array([r["alpha"] for r in kept[:len(rows) + 1]])
        for name in splits:
            labels = data.split(name).labels
            predictions[name].append(logits[name].argmax(1))
            row[f"member_{name}_top1"] = float(np.mean(predictions[name][-1] == labels))
            row[f"ensemble_{name}_top1"] = samme_top1(np.stack(predictions[name]), alphas, labels,
                                                      state["num_classes"])
        rows.append(row)
    return rows


def to_markdown(state: dict[str, Any]) -> str:
    """boosting.md: one row per kept round (member vs the vote of the rounds so far), and why it stopped."""
    lines = ["# SAMME boosting", "", f"{state['num_classes']} classes, {state['num_train_examples']} carved training "
             f"examples, {len(state['rounds'])} rounds trained.", "",
             "| round | weighted train error | alpha | member val top-1 | ensemble val top-1 | member test top-1 "
             "| ensemble test top-1 |", "|---|---|---|---|---|---|---|"]
    for row in state.get("report", []):
        lines.append(f"| {row['round']} | {row['train_error']:.4f} | {row['alpha']:.4f} | "
                     f"{100 * row['member_validation_top1']:.2f}% | {100 * row['ensemble_validation_top1']:.2f}% | "
                     f"{100 * row['member_test_top1']:.2f}% | {100 * row['ensemble_test_top1']:.2f}% |")
    dropped = [r for r in state["rounds"] if not r["kept"]]
    if dropped:
        lines += ["", f"Round {dropped[0]['round']} was dropped (weighted training error "
                      f"{dropped[0]['train_error']:.4f})."]
    if state["stopped"]:
        lines += ["", f"Stopped early: {state['stopped']}."]
    return "\n".join(lines) + "\n"
