"""Evaluation of a trained workdir: the best (or a given) checkpoint on a split, written as JSON + PNG.

It may run while the training run is still saving and rotating checkpoints away: the step is chosen just
before it is restored, and chosen again if retention removed it meanwhile (a bounded number of times).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from typing import Any

import jax
import ml_collections
import numpy as np

from cnnjax import sharding
from cnnjax.config import has_validation
from cnnjax.data.preprocess import Statistics
from cnnjax.data.splits import load_for_config
from cnnjax.data.stream import inputs as stream_inputs
from cnnjax.data.types import uses_stream
from cnnjax.data.pipeline import replicate
from cnnjax.data.sources import DatasetMeta, Split
from cnnjax.errors import CnnjaxError
from cnnjax.evaluate.exact import classification_metrics, predict_logits, preprocess_predict_fn
from cnnjax.evaluate.outputs import prepare as prepare_outputs, write_outputs
from cnnjax.evaluate.per_class import per_class_metrics
from cnnjax.evaluate.restore import abstract_variables, is_converted, restore_variables
from cnnjax.evaluate.tta import check_mode as check_tta_mode
from cnnjax.evaluate.weights import evaluate_weights
from cnnjax.train import experiment, run_info, run_statistics
from cnnjax.train.checkpoint import CheckpointError, Checkpointer, StepNotFoundError, open_read_only

log = logging.getLogger("cnnjax")
# Choices of the best step that may be rotated away by a training run before one is read whole.
ATTEMPTS = 10


def evaluate_workdir(workdir: str | pathlib.Path, split: str = "test", step: int | None = None,
                     out: str | pathlib.Path | None = None, batch_size: int | None = None, *,
                     model: str | None = None, dataset: str | None = None,
                     num_examples: int | None = None, ema: bool = False, tta: str = "none") -> dict[str, Any]:
    """Restores the best checkpoint (highest validation top-1) or `step`, evaluates every example of `split`.

    With `ema`, the checkpoint's moving average of the weights is scored instead of the raw weights (a run
    trained with ema_decay > 0; the checkpoint is the same one, ranked as the run ranked them: by the raw
    weights' validation top-1 unless it set ema_select_best).

    Only `params`/`batch_stats` are read and only the data `split` and its normalisation need. A
    `cnnjax convert` output (or any `model=`) is scored by `evaluate.weights.evaluate_weights` with the
    model's own registry preprocessing; `num_examples` keeps the first N examples of the split (a quick check).
    `tta` averages the predictions over test-time views (`cnnjax.evaluate.tta`; in-memory runs only). The result
    holds the per-class precision/recall/F1/support (`per_class.per_class_metrics`) beside the overall metrics.
    """
    workdir = pathlib.Path(workdir)
    check_tta_mode(tta)
    if (model is not None or dataset is not None) and (workdir / "run.json").is_file():
        raise CnnjaxError(f"{workdir} is a training workdir: its model and dataset come from its run.json; "
                          "--model/--dataset are for `cnnjax convert` outputs, drop them")
    if model is not None or dataset is not None or is_converted(workdir):
        if ema:
            raise CnnjaxError(f"{workdir} is converted weights, which have no moving average: drop --ema")
        if step is not None:
            raise CnnjaxError(f"{workdir} is converted weights, which have no steps: drop --step")
        if tta != "none":
            raise CnnjaxError(f"--tta is for training workdirs; {workdir} is converted weights: drop --tta")
        return evaluate_weights(workdir, model, dataset, split, out, batch_size, num_examples=num_examples)
    config = run_info.load_config(workdir)
    if split == "validation" and not has_validation(config):
        raise CnnjaxError(f"{workdir} was trained with validation_size=0: it has no validation split; "
                          "use --split test or --split train")
    if ema and not config.get("ema_decay", 0.0):
        raise CnnjaxError(f"{workdir} was trained with ema_decay=0: it has no EMA weights; drop --ema")
    if tta != "none" and uses_stream(config):
        raise CnnjaxError(f"--tta is the in-memory evaluation's; {workdir} streams its data, which evaluates "
                          "10 crops when trained with stream.ten_crop=true: drop --tta")
    outputs = prepare_outputs(os.fspath(out), workdir) if out is not None else None
    with open_read_only(workdir) as ckpt:
        if step is not None:
            ckpt.require(step)  # fails before the data is loaded
        mesh = sharding.make_mesh(config.num_devices)
        meta_data, data, predictor = _split_and_predictor(config, workdir, split, num_examples, mesh, tta)
        net = experiment.build_model(config, meta_data.num_classes, meta_data.image_shape)
        target = abstract_variables(net, meta_data.image_shape, mesh)
        step, variables, meta = _restore(ckpt, step, target, ema)
    device_data = data.device if isinstance(data, _InMemory) else data
    logits = predict_logits(predictor(net), variables, device_data, batch_size or config.eval_batch_size, mesh)
    result = {"workdir": str(workdir), "model": config.model, "dataset": config.dataset, "split": split,
              "step": int(step), "epoch": meta.get("epoch"), **classification_metrics(logits, data.labels),
              "tta": tta, "per_class": {"class_names": list(map(str, meta_data.class_names)),
                                        **per_class_metrics(data.labels, logits.argmax(1), meta_data.num_classes)}}
    if ema:
        result["weights"] = "ema"
    if outputs is not None and jax.process_index() == 0:  # the processes computed the same; one writes
        write_outputs(outputs, result, logits, data.labels, meta_data,
                      title=f"{config.model} on {config.dataset} {split} (step {step}{', EMA' if ema else ''})")
    return result


def _split_and_predictor(config: ml_collections.ConfigDict, workdir: pathlib.Path, split: str,
                         num_examples: int | None, mesh: Any, tta: str = "none"):
    """(dataset meta, the split as `predict_logits` takes it, model -> predict function), for the run's input
    pipeline: the in-memory split on the devices, preprocessed with the statistics stored in `workdir`, or the
    streamed one (read and cropped as validation did). The split's `labels` are in example order (for a
    streamed split, once it has been evaluated)."""
    dtype = experiment.DTYPES[config.dtype]
    if uses_stream(config):
        inputs = stream_inputs.build(config)
        data = inputs.eval_split(split, num_examples)
        return inputs.meta, data, lambda net: inputs.predict_fn(net, mesh, dtype)
    meta_data, data, stats = split_and_statistics(config, workdir, split)
    if num_examples:
        data = data.take(np.arange(min(num_examples, len(data))))
    return meta_data, _InMemory(replicate(data, mesh), data.labels), \
        lambda net: preprocess_predict_fn(net, stats, mesh, dtype, tta)


@dataclasses.dataclass(frozen=True)
class _InMemory:
    """An in-memory split on the devices, with its labels on the host (as a streamed split has them)."""

    device: Any
    labels: np.ndarray


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


def split_and_statistics(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                         split: str) -> tuple[DatasetMeta, Split, Statistics]:
    """(dataset meta, the examples of `split`, preprocessing statistics) of a training workdir: the statistics
    stored with its checkpoints (`run_statistics`), or for an older workdir derived from its training examples
    as `load_split_for` carves them."""
    data = load_for_config(config, with_test=split == "test", resample=False)
    return data.meta, data.split(split), run_statistics.for_evaluation(config, workdir, data.train)


def _restore(ckpt: Checkpointer, step: int | None, target: Any,
             ema: bool = False) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Restores the variables (or their EMA) of `step`, or of the best step as it is at the moment of reading
    (chosen again if rotated away)."""
    if step is not None:
        return step, *restore_variables(ckpt, step, target, ema)
    for _ in range(ATTEMPTS):
        step = ckpt.best_step(skip_damaged=True)
        if step is None:
            raise CheckpointError(f"no checkpoint in {ckpt.directory} yet: train first, or wait for the run's "
                                  "first checkpoint")
        try:
            return step, *restore_variables(ckpt, step, target, ema)
        except StepNotFoundError:
            log.info("step %d was rotated away by the training run while being read; choosing again", step)
    raise CheckpointError(f"the training run rotated away each of the last {ATTEMPTS} checkpoints chosen in "
                          f"{ckpt.directory} before it could be read; try again, or pass --step with a step "
                          "that its retention keeps (the best)")


def format_table(result: dict[str, Any]) -> str:
    """A small Markdown table of an evaluation result."""
    rows = [("model", result["model"]), ("dataset / split", f"{result['dataset']} / {result['split']}"),
            ("checkpoint step", f"{result['step']}{' (EMA weights)' if result.get('weights') == 'ema' else ''}"),
            ("examples", f"{result['num_examples']:,}"),
            ("test-time augmentation", result.get("tta", "none")),
            ("top-1", f"{100 * result['top1']:.2f}%"), ("top-5", f"{100 * result['top5']:.2f}%"),
            ("NLL", f"{result['nll']:.4f}")]
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'':{width}} | result |", f"|{'-' * (width + 2)}|--------|"]
    lines += [f"| {k:{width}} | {v} |" for k, v in rows]
    return "\n".join(lines)
