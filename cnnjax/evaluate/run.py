"""Evaluation of a trained workdir: the best (or a given) checkpoint on a split, written as JSON + PNG."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

from cnnjax import plots
from cnnjax.data.pipeline import replicate
from cnnjax.evaluate.exact import classification_metrics, confusion_matrix, make_predict_fn, predict_logits
from cnnjax.train import experiment, run_info
from cnnjax.train.checkpoint import Checkpointer


def evaluate_workdir(workdir: str | pathlib.Path, split: str = "test", step: int | None = None,
                     out: str | pathlib.Path | None = None, batch_size: int | None = None) -> dict[str, Any]:
    """Restores the best checkpoint (highest validation top-1) or `step`, evaluates every example of `split`."""
    workdir = pathlib.Path(workdir)
    config = run_info.load_config(workdir)
    with Checkpointer(workdir, read_only=True) as ckpt:
        step = ckpt.best_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {ckpt.directory}")
        exp = experiment.build(config)
        state, meta = ckpt.restore(step, exp.init_state())
    data = exp.data.split(split)
    predict_fn = make_predict_fn(exp.model, exp.data.mean, exp.data.std, exp.mesh, exp.dtype)
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    logits = predict_logits(predict_fn, variables, replicate(data, exp.mesh), batch_size or config.eval_batch_size,
                            exp.mesh)
    result = {"workdir": str(workdir), "model": config.model, "dataset": config.dataset, "split": split,
              "step": int(step), "epoch": meta.get("epoch"), **classification_metrics(logits, data.labels)}
    if out is not None:
        out = pathlib.Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        matrix = confusion_matrix(logits, data.labels, exp.data.meta.num_classes)
        png = out.with_name(out.stem + "_confusion.png")
        plots.confusion_matrix_png(matrix, exp.data.meta.class_names, png,
                                   title=f"{config.model} on {config.dataset} {split} (step {step})")
        np.save(out.with_name(out.stem + "_logits.npy"), logits)
        result["confusion_png"] = str(png)
    return result


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
