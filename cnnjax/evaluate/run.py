"""Evaluation of a trained workdir: the best (or a given) checkpoint on a split, written as JSON + PNG.

It may run while the training run is still saving and rotating checkpoints away: the step is chosen just
before it is restored, and chosen again if retention removed it meanwhile (a bounded number of times).
"""

from __future__ import annotations

import logging
import os
import pathlib
from typing import Any

import ml_collections
import numpy as np

from cnnjax import sharding
from cnnjax.config import has_validation
from cnnjax.data.splits import load_for_config
from cnnjax.data.pipeline import replicate
from cnnjax.data.sources import DatasetMeta, Split
from cnnjax.errors import CnnjaxError
from cnnjax.evaluate.exact import classification_metrics, make_predict_fn, predict_logits
from cnnjax.evaluate.outputs import prepare as prepare_outputs, write_outputs
from cnnjax.evaluate.restore import abstract_variables, is_converted, restore_variables
from cnnjax.evaluate.weights import evaluate_weights
from cnnjax.train import experiment, run_info
from cnnjax.train.checkpoint import CheckpointError, Checkpointer, StepNotFoundError, open_read_only

log = logging.getLogger("cnnjax")
# Choices of the best step that may be rotated away by a training run before one is read whole.
ATTEMPTS = 10


def evaluate_workdir(workdir: str | pathlib.Path, split: str = "test", step: int | None = None,
                     out: str | pathlib.Path | None = None, batch_size: int | None = None, *,
                     model: str | None = None, dataset: str | None = None,
                     num_examples: int | None = None) -> dict[str, Any]:
    """Restores the best checkpoint (highest validation top-1) or `step`, evaluates every example of `split`.

    Only `params`/`batch_stats` are read and only the data `split` and its normalisation need. A
    `cnnjax convert` output (or any `model=`) is scored by `evaluate.weights.evaluate_weights` with the
    model's own registry preprocessing; `num_examples` keeps the first N examples of the split (a quick check).
    """
    workdir = pathlib.Path(workdir)
    if (model is not None or dataset is not None) and (workdir / "run.json").is_file():
        raise CnnjaxError(f"{workdir} is a training workdir: its model and dataset come from its run.json; "
                          "--model/--dataset are for `cnnjax convert` outputs, drop them")
    if model is not None or dataset is not None or is_converted(workdir):
        if step is not None:
            raise CnnjaxError(f"{workdir} is converted weights, which have no steps: drop --step")
        return evaluate_weights(workdir, model, dataset, split, out, batch_size, num_examples=num_examples)
    config = run_info.load_config(workdir)
    if split == "validation" and not has_validation(config):
        raise CnnjaxError(f"{workdir} was trained with validation_size=0: it has no validation split; "
                          "use --split test or --split train")
    outputs = prepare_outputs(os.fspath(out), workdir) if out is not None else None
    with open_read_only(workdir) as ckpt:
        if step is not None:
            ckpt.require(step)  # fails before the data is loaded
        meta_data, data, mean, std = load_split_for(config, split)
        if num_examples:
            data = data.take(np.arange(min(num_examples, len(data))))
        mesh = sharding.make_mesh(config.num_devices)
        net = experiment.build_model(config, meta_data.num_classes, meta_data.image_shape)
        target = abstract_variables(net, meta_data.image_shape, mesh)
        step, variables, meta = _restore(ckpt, step, target)
    dtype = experiment.DTYPES[config.dtype]
    predict_fn = make_predict_fn(net, mean, std, mesh, dtype)
    logits = predict_logits(predict_fn, variables, replicate(data, mesh), batch_size or config.eval_batch_size,
                            mesh)
    result = {"workdir": str(workdir), "model": config.model, "dataset": config.dataset, "split": split,
              "step": int(step), "epoch": meta.get("epoch"), **classification_metrics(logits, data.labels)}
    if outputs is not None:
        write_outputs(outputs, result, logits, data.labels, meta_data,
                      title=f"{config.model} on {config.dataset} {split} (step {step})")
    return result


def load_split_for(config: ml_collections.ConfigDict, split: str) -> tuple[DatasetMeta, Split, tuple[float, ...],
                                                                            tuple[float, ...]]:
    """(dataset meta, the examples of `split`, mean, std) exactly as training made them, loading no more.

    The normalisation statistics are those of the run's training examples (after the validation or
    cross-validation carve and `num_train_examples`), so train is read for any split; test is read only when it
    is scored. A bagged or boosted run's resample is not redrawn: its statistics are those of the carved
    examples anyway, and its "train" split is the carved training examples, each once.
    """
    data = load_for_config(config, with_test=split == "test", resample=False)
    return data.meta, data.split(split), data.mean, data.std


def _restore(ckpt: Checkpointer, step: int | None, target: Any) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Restores the variables of `step`, or of the best step as it is at the moment of reading (chosen again
    if rotated away)."""
    if step is not None:
        return step, *restore_variables(ckpt, step, target)
    for _ in range(ATTEMPTS):
        step = ckpt.best_step(skip_damaged=True)
        if step is None:
            raise CheckpointError(f"no checkpoint in {ckpt.directory} yet: train first, or wait for the run's "
                                  "first checkpoint")
        try:
            return step, *restore_variables(ckpt, step, target)
        except StepNotFoundError:
            log.info("step %d was rotated away by the training run while being read; choosing again", step)
    raise CheckpointError(f"the training run rotated away each of the last {ATTEMPTS} checkpoints chosen in "
                          f"{ckpt.directory} before it could be read; try again, or pass --step with a step "
                          "that its retention keeps (the best)")


def format_table(result: dict[str, Any]) -> str:
    """A small Markdown table of an evaluation result."""
    rows = [("model", result["model"]), ("dataset / split", f"{result['dataset']} / {result['split']}"),
            ("checkpoint step", result["step"]), ("examples", f"{result['num_examples']:,}"),
            ("top-1", f"{100 * result['top1']:.2f}%"), ("top-5", f"{100 * result['top5']:.2f}%"),
            ("NLL", f"{result['nll']:.4f}")]
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'':{width}} | result |", f"|{'-' * (width + 2)}|--------|"]
    lines += [f"| {k:{width}} | {v} |" for k, v in rows]
    return "\n".join(lines)
